"""A live `kennel serve` subprocess per backend, driven over HTTP by the official SDK.

`live_server` starts the real server once per session and backend (SQLite, and PostgreSQL
when KENNEL_TEST_POSTGRES_URL is set), on a free port, with a fresh database, a temporary
data folder and a generated bootstrap key; it stops it (SIGTERM, then SIGKILL) at the end.
The server's stderr (its JSON-lines log) goes to `live_server.log_path`; when a test that
uses the server fails, the tail of that log is attached to the report.

Later modules (tasks, schedules, webhooks) reuse it:

    def test_something(live_server: LiveServer) -> None:
        with live_server.sdk() as client:          # strict official SDK, bootstrap key
            ...
        other = live_server.create_member(org="another")   # a key of a second user
        with live_server.sdk(other.key) as client: ...

A module that needs other settings (e.g. KENNEL_OFFLINE_MODEL_DELAY_SECONDS) can start its
own server with `start_live_server(tmp_dir, database_url, extra_env={...})` as a context
manager.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from handinger import AsyncHandinger, Handinger

from kennel.auth.keys import generate_key
from tests.conftest import BACKENDS, fresh_database

__all__ = ["LiveServer", "Member", "free_port", "start_live_server"]

STARTUP_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 15.0
LOG_TAIL_LINES = 80
_E2E_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Member:
    """A user made with `kennel keys create`: its key and the ids the command printed."""

    key: str
    email: str
    organization: str
    user_id: str
    organization_id: str


@dataclass
class LiveServer:
    """A running `kennel serve` and what a test needs to talk to it."""

    backend: str
    base_url: str
    api_key: str = field(repr=False)  # kept out of tracebacks that print the fixture
    env: dict[str, str] = field(repr=False)
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    _clients: list[Any] = field(default_factory=list, repr=False)

    def sdk(self, api_key: str | None = None, **options: Any) -> Handinger:
        """The official SDK in strict mode; no retries, so a 5xx shows up at once."""
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 60.0)
        client = Handinger(
            base_url=self.base_url,
            api_key=api_key or self.api_key,
            _strict_response_validation=True,
            **options,
        )
        self._clients.append(client)
        return client

    def async_sdk(self, api_key: str | None = None, **options: Any) -> AsyncHandinger:
        """`AsyncHandinger` in strict mode; close it (`async with`) in the test's loop."""
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 60.0)
        return AsyncHandinger(
            base_url=self.base_url,
            api_key=api_key or self.api_key,
            _strict_response_validation=True,
            **options,
        )

    def http(self, api_key: str | None = None) -> httpx.Client:
        """A plain HTTP client (for what the SDK cannot express); `None` key: no auth header."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60.0)

    def create_member(
        self, *, email: str | None = None, org: str | None = None, admin: bool = False
    ) -> Member:
        """`kennel keys create` against the server's database; a new organization by default."""
        email = email or f"user-{secrets.token_hex(4)}@example.com"
        org = org or f"org-{secrets.token_hex(4)}"
        args = ["keys", "create", "--email", email, "--org", org]
        if admin:
            args.append("--admin")
        lines = self.cli(*args).stdout.strip().splitlines()
        org_id = re.search(r"\b(org_\S+)", lines[0])
        user_id = re.search(r"\b(usr_\S+)", lines[1])
        assert org_id, lines
        assert user_id, lines
        return Member(lines[-1].strip(), email, org, user_id.group(1), org_id.group(1))

    def create_key(self, *, email: str | None = None, org: str | None = None) -> str:
        """Only the key of `create_member`."""
        return self.create_member(email=email, org=org).key

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `python -m kennel ARGS` with the server's environment; fail on a non-zero exit."""
        done = subprocess.run(
            [sys.executable, "-m", "kennel", *args],
            env=self.env,
            cwd=self.log_path.parent,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(
                f"`kennel {' '.join(args)}` exited {done.returncode}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            return "\n".join(self.log_text().splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Call `check` until it returns something truthy, and return it; fail with the log's
        tail if the server exits or `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while not (value := check()):
            if self.process.poll() is not None:
                pytest.fail(f"the server exited while waiting for {what}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}\n{self.log_tail()}")
            time.sleep(0.05)
        return value

    def close_clients(self) -> None:
        while self._clients:
            self._clients.pop().close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(
    database_url: str, data_dir: Path, port: int, api_key: str, extra: Mapping[str, str]
) -> dict[str, str]:
    """The parent's environment minus every inherited KENNEL_* (and HANDINGER_*) variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KENNEL_", "HANDINGER_"))}
    env.update(
        {
            "KENNEL_DATABASE_URL": database_url,
            "KENNEL_DATA_DIR": str(data_dir),
            "KENNEL_BOOTSTRAP_API_KEY": api_key,
            "KENNEL_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "KENNEL_MODEL": "offline",
            "KENNEL_SMTP_PORT": "0",  # a free port: servers of several tests run at once
            # Several servers share the test PostgreSQL (max_connections 100): each takes few.
            "KENNEL_DATABASE_CONNECTIONS": "12",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def start_live_server(
    workdir: Path,
    database_url: str,
    *,
    backend: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[LiveServer]:
    """Start `kennel serve` on a free port, wait for /healthz, stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    data_dir.mkdir(exist_ok=True)
    api_key = generate_key()
    port = free_port()
    env = server_env(database_url, data_dir, port, api_key, extra_env or {})
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log_file, open(workdir / "server.stdout", "wb") as out_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "kennel", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=out_file,
            stderr=log_file,
            start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, which stops it
        )
        server = LiveServer(
            backend=backend or database_url.split(":", 1)[0],
            base_url=f"http://127.0.0.1:{port}",
            api_key=api_key,
            env=env,
            log_path=log_path,
            process=process,
        )
        try:
            _wait_until_healthy(server, log_file)
            yield server
        finally:
            server.close_clients()
            _stop(process)


def _wait_until_healthy(server: LiveServer, log_file: IO[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    last_error = "no attempt"
    with httpx.Client(base_url=server.base_url, timeout=2.0) as http:
        while time.monotonic() < deadline:
            code = server.process.poll()
            if code is not None:
                log_file.flush()
                pytest.fail(
                    f"kennel serve ({server.backend}) exited with {code} before it was healthy;"
                    f" log {server.log_path}:\n{server.log_tail()}"
                )
            try:
                response = http.get("/healthz")
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.TransportError as exc:
                last_error = repr(exc)
            time.sleep(0.1)
    pytest.fail(
        f"kennel serve ({server.backend}) not healthy after {STARTUP_TIMEOUT_SECONDS}s"
        f" ({last_error}); log {server.log_path}:\n{server.log_tail()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)


@pytest.fixture(scope="session", params=BACKENDS)
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The real server, once per session and backend, on a fresh database."""
    workdir = tmp_path_factory.mktemp(f"kennel-{request.param}")
    with (
        fresh_database(request.param, workdir) as database_url,
        start_live_server(workdir, database_url, backend=request.param) as server,
    ):
        yield server


@pytest.fixture
def sdk(live_server: LiveServer) -> Iterator[Handinger]:
    """A strict SDK client holding the bootstrap (admin) key, closed after the test."""
    with live_server.sdk() as client:
        yield client


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _E2E_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        server = getattr(item, "funcargs", {}).get("live_server")
        if isinstance(server, LiveServer):
            report.sections.append(
                (
                    f"kennel serve log ({server.backend}, last {LOG_TAIL_LINES} lines of"
                    f" {server.log_path})",
                    server.log_tail(),
                )
            )
    return report
