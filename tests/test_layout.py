"""Rules of the code base that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).parent.parent / "src" / "kennel"


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def test_one_way_to_the_database() -> None:
    """Only `kennel.db` reaches the database: no ORM session, no second API beside it."""
    banned = re.compile(r"\b(AsyncSession|SessionDep|on_connection|FastWorkerRead|sessionmaker)\b")
    found = [
        f"{path.relative_to(SRC)}:{n}"
        for path in _sources()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if banned.search(line)
    ]
    assert found == []


def test_statements_are_built_in_repositories_only() -> None:
    """`select`, `insert`, `update` and `delete` are SQLAlchemy's only in repositories (and in
    the database package, which runs them)."""
    builders = {"select", "insert", "update", "delete"}
    found = []
    for path in _sources():
        relative = path.relative_to(SRC)
        if path.name == "repository.py" or relative.parts[0] in ("db", "models"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                names = {alias.name for alias in node.names} & builders
                if names:
                    found.append(f"{relative}: {sorted(names)}")
    assert found == []


def test_every_type_ignore_says_why() -> None:
    ignore = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?(?P<rest>.*)$")
    found = []
    for path in _sources():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            match = ignore.search(line)
            if match and not match["rest"].strip().startswith("#"):
                found.append(f"{path.relative_to(SRC)}:{n}")
    assert found == []


def test_runtime_current_only_at_durable_entry_points() -> None:
    """Code called from requests is handed the runtime; only DBOS workflows and steps, which
    run outside any request, look it up."""
    allowed = {
        Path("tasks/workflows.py"),
        Path("tasks/listeners.py"),  # the step that asks the listeners
        Path("agents/tools.py"),
        Path("agents/agent.py"),
        Path("agents/mcp_tools.py"),  # the steps that list and call MCP tools
        Path("webhooks/workflows.py"),
        Path("mail/workflows.py"),
        Path("mail/answers.py"),
    }
    found = [
        str(path.relative_to(SRC))
        for path in _sources()
        if "runtime.current()" in path.read_text() and path.relative_to(SRC) not in allowed
    ]
    assert found == []


# The order domains import one another in, lowest first: a module may import from its own
# package and from the levels below its own, never from above nor from a peer at its level.
# The plumbing at the bottom may import within itself (the cycle test watches it). A place is
# a package, or a module of `api`, whose helpers are plumbing and whose app is the shell. A
# package not listed here fails the test until it is given its place.
_WEB_PLUMBING = {
    "api.docs",
    "api.errors",
    "api.http",
    "api.middleware",
    "api.openapi",
    "api.unavailable",
}
LEVELS: tuple[frozenset[str], ...] = (
    # `workspaces` is here, not with `workers`: the agents' file tools, a level below, use it.
    # `metrics` too: every domain records its events there, and it knows none of them.
    frozenset(
        {"", "api", "core", "db", "idempotency", "metrics", "models", "workspaces", *_WEB_PLUMBING}
    ),
    frozenset({"auth"}),
    frozenset({"mcp_servers"}),  # the MCP servers agents call, below the agents that call them
    frozenset({"agents"}),
    frozenset({"workers"}),
    frozenset({"tasks"}),
    frozenset({"schedules", "webhooks", "mail"}),
    frozenset({"dashboard", "mcp", "retention"}),
    # The shell that wires them together.
    frozenset({"api.startup"}),
    frozenset({"api.app"}),
    frozenset({"cli"}),
    frozenset({"__main__"}),
)
_LEVEL_OF = {place: n for n, level in enumerate(LEVELS) for place in level}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, *, lazy: bool) -> list[ast.Import | ast.ImportFrom]:
    """The module's import statements: those run when it loads, and with `lazy` those inside
    functions too; never those under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(nodes: list[ast.stmt], top: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if lazy:
                    visit(node.body, False)
            elif isinstance(node, ast.ClassDef):
                visit(node.body, top)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit(getattr(node, field, []), top)

    visit(tree.body, True)
    return found


def _imported_names(node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.ImportFrom):
        if not (node.module or "").startswith("kennel"):
            return set()
        return {node.module or ""} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {a.name for a in node.names if a.name.startswith("kennel")}


def _module_imports(*, lazy: bool = False) -> dict[str, set[str]]:
    """Each kennel module's imports of other kennel modules: those made when it loads (not
    for type checking only), and with `lazy` those inside functions too."""
    graph: dict[str, set[str]] = {}
    for path in _sources():
        found: set[str] = set()
        for node in _imports(ast.parse(path.read_text()), lazy=lazy):
            found |= _imported_names(node)
        graph[_module_name(path)] = found
    return {m: {i for i in imports if i in graph and i != m} for m, imports in graph.items()}


def _package(module: str) -> str:
    """Its place in LEVELS: `kennel.tasks.service` -> `tasks`; `kennel.api.app` -> `api.app`,
    `kennel.api` -> `api`; `kennel` -> ``."""
    parts = module.split(".")[1:]
    if len(parts) > 1 and ".".join(parts[:2]) in _LEVEL_OF:
        return ".".join(parts[:2])
    return parts[0] if parts else ""


def test_every_package_has_its_place_in_the_order() -> None:
    unplaced = sorted({_package(m) for m in _module_imports()} - _LEVEL_OF.keys())
    assert unplaced == [], f"give these a level in LEVELS: {unplaced}"


def test_domains_import_one_way() -> None:
    """Module-level and function-level imports alike follow LEVELS."""
    upward = []
    for module, imports in sorted(_module_imports(lazy=True).items()):
        here = _package(module)
        level = _LEVEL_OF.get(here)
        for imported in sorted(imports):
            if any(i.startswith(imported + ".") for i in imports):
                continue  # `kennel.tasks` of `from kennel.tasks import control`: said once
            there = _package(imported)
            other = _LEVEL_OF.get(there)
            if level is None or other is None or there == here or other < level:
                continue
            if other == level == 0:  # plumbing among itself: the cycle test watches it
                continue
            upward.append(f"{module} imports {imported}")
    assert upward == [], "imports against the order of LEVELS:\n" + "\n".join(upward)


def test_modules_import_one_another_without_cycles() -> None:
    graph = _module_imports(lazy=True)
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # A package imports its own modules (`kennel.auth` re-exports `kennel.auth.dependencies`):
    # that is not a cycle between concepts.
    real = [c for c in cycles if not all(m.startswith(c[0] + ".") or m == c[0] for m in c[1:])]
    assert real == []


def test_loading_the_settings_loads_no_domain() -> None:
    """Settings are near the bottom: they parse with `kennel.core.parsers`, not with a domain's
    modules (which once made every `Settings()` load `standardwebhooks`)."""
    code = (
        "import sys, kennel.core.settings;"
        "print(sorted(m for m in sys.modules if m.startswith(('kennel.', 'standardwebhooks'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "['kennel.core', 'kennel.core.parsers', 'kennel.core.settings']"
