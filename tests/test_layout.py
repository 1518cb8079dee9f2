"""Rules of the code base that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
import re
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
        Path("mail/intake.py"),
        Path("mail/answers.py"),
    }
    found = [
        str(path.relative_to(SRC))
        for path in _sources()
        if "runtime.current()" in path.read_text() and path.relative_to(SRC) not in allowed
    ]
    assert found == []


def _module_imports() -> dict[str, set[str]]:
    """Each kennel module's imports of other kennel modules made when it loads (not inside
    functions, not for type checking only)."""
    graph: dict[str, set[str]] = {}
    for path in _sources():
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.If):  # `if TYPE_CHECKING:`
                continue
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kennel"):
                found.add(node.module or "")
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("kennel"))
        graph[module] = found
    return {m: {i for i in imports if i in graph and i != m} for m, imports in graph.items()}


def test_modules_import_one_another_without_cycles() -> None:
    graph = _module_imports()
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
