"""Fault probe: what real `kennel serve` processes do when one is killed, the database drops its
connections, the disk fills up or a stop signal comes, measured from outside over HTTP.

Hand-run, not a test:

    .venv/bin/python bench/faults.py SCENARIO --tree /work/main/src [--postgres URL] [--out F]
    .venv/bin/python bench/faults.py table OLD.jsonl NEW.jsonl   # markdown: figure, old, new

SCENARIO is one of takeover, takeover-new-id, connections, webhooks, storm, disk, sigterm, or
`all` (each in turn). `--tree` is the source folder the servers import (it goes in their
PYTHONPATH), so one script compares two checkouts. Every figure is printed as one line
(`scenario | figure | value`) and, with `--out`, appended as a JSON line for `table`. Lines
starting with `#` are notes: what a figure means, or what the server logged.

Each server is `python -m kennel serve` in its own session (so a kill -9 of its process group
leaves nothing behind) with KENNEL_MODEL=offline, KENNEL_SMTP_PORT=0, its own data folder and a
bootstrap key made by the tree's own `generate_key()`. PostgreSQL scenarios use a scratch
database `kennel_probe_<hex>` on `--postgres` (dropped at the end); SQLite ones a file in the
scenario's folder. Server logs stay in `--workdir` (a new temp folder by default) for reading.

1. takeover: two processes on one PostgreSQL database, offline model 1 s a chunk, 40 tasks (20
   through each) whose answers stream in 8 chunks (8 s a turn, so most are in flight), the
   first process killed -9 3 s after the last POST and never restarted. Figures: turns still
   pending/running 60 s and 120 s after the kill, seconds until the last turn ended (its
   `completedAt` minus the kill), turns by final status, the most model requests one prompt
   got (the offline model's trace file, one line per request). takeover-new-id: the same, and
   the killed process comes back 5 s later under a new executor id. On a tree whose default
   executor id is one fixed value for every process (`local`), the processes get explicit ids
   p1 and p2, and the restart p3; otherwise each tree's default (unique per process).
2. connections: two processes on one PostgreSQL database with the tree's default pool
   settings, 200 tasks from 16 concurrent clients (0.2 s a chunk), and the database's backends
   counted in `pg_stat_activity` every 50 ms (from a connection to another database): the peak
   during the load (posting until every turn ended), and the count 75 s after it, idle.
3. webhooks: one process on SQLite with a fixed executor id, a worker whose webhook points at a
   receiver in this script that answers 500, 500, then 200 to each event (by `webhook-id`),
   a retry schedule of 1s,1s,2s,4s (4 attempts), 500 tasks posted by 4 clients, the server
   killed -9 twice while tasks are posted and deliveries go on (once 300 POSTs came in, and once
   300 more came in after the restart) and restarted each time with the same id (DBOS recovers
   its own work); a POST refused while the server is down is sent again. Once the receiver and
   the delivery log (read through `GET /api/workers/{id}/webhook/executions`) stop changing for
   20 s: POSTs received, attempts logged, events whose logged attempts differ from the POSTs
   the receiver got for them, the most attempts one event had, events never answered 200.
4. storm: one process on PostgreSQL, 60 tasks posted at 10 a second (0.3 s a chunk) while every
   backend of the database is terminated (`pg_terminate_backend`) every 0.5 s for 10 s; a client
   polls `GET /api/tasks/{id}` meanwhile. Figures: turns by final status and error code, 5xx
   answers to the polls and the POSTs.
5. disk: one process whose SQLite file is on a 64 MB tmpfs (mounted here; root only): one task
   (1 s a chunk) running, the tmpfs filled to the last byte, 10 tasks with ~95,000-character
   inputs posted, 3 s, the filler removed. Figures: the POSTs' status codes and whether their
   bodies say "bug" or "disk is full", the running turn's status while full and at its end.
6. sigterm: one process with a fixed executor id, 90 s a chunk, 10 open streams (`stream: true`)
   and 10 waiting POSTs (KENNEL_TASK_WAIT_SECONDS=40), then SIGTERM. Figures: seconds until the
   process exited, how the streams and POSTs ended, and whether a restart with the same id (and
   no model delay) finishes the 20 turns.

Every scenario is bounded (about 2-4 minutes each, `all` about 15). Processes, scratch databases
and mounts are cleaned up on the way out, also after an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

SCENARIOS = ["takeover", "takeover-new-id", "connections", "webhooks", "storm", "disk", "sigterm"]
ENDED = ("completed", "error", "aborted")
STARTUP_SECONDS = 90.0

# What is started here, so that whatever happens it is stopped, dropped and unmounted.
_PROCESSES: list[subprocess.Popen[bytes]] = []
_DATABASES: list[tuple[str, str]] = []  # (admin dsn, name)
_MOUNTS: list[Path] = []


# --------------------------------------------------------------------------- the source tree


class Tree:
    """The source folder servers import, and what its Settings know."""

    def __init__(self, src: Path) -> None:
        self.src = src.resolve()
        probe = (
            "import json; from kennel.core.settings import Settings;"
            " from kennel.auth.keys import generate_key; f = Settings.model_fields;"
            " print(json.dumps({'fields': sorted(f),"
            " 'executor_factory': f['executor_id'].default_factory is not None,"
            " 'keys': [generate_key() for _ in range(20)]}))"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env={**_clean_env(), "PYTHONPATH": str(self.src)},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"cannot import kennel from {self.src}:\n{done.stderr}")
        info = json.loads(done.stdout)
        self.fields: set[str] = set(info["fields"])
        # Old trees default every process to the same id ("local"); new ones to a unique one.
        self.unique_executor_ids = bool(info["executor_factory"])
        self._keys: list[str] = info["keys"]

    def has(self, setting: str) -> bool:
        return setting in self.fields

    def key(self) -> str:
        return self._keys.pop()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("KENNEL_", "HANDINGER_"))}


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One `kennel serve` subprocess of the tree; `start()` may be called again after a kill."""

    def __init__(
        self,
        tree: Tree,
        folder: Path,
        name: str,
        database_url: str,
        api_key: str,
        env: dict[str, str],
    ) -> None:
        self.tree, self.folder, self.name = tree, folder, name
        self.database_url, self.api_key, self.extra = database_url, api_key, dict(env)
        self.data_dir = folder / f"{name}-data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def env(self) -> dict[str, str]:
        env = _clean_env()
        env.update(
            {
                "PYTHONPATH": str(self.tree.src),
                "PYTHONUNBUFFERED": "1",
                "KENNEL_DATABASE_URL": self.database_url,
                "KENNEL_DATA_DIR": str(self.data_dir),
                "KENNEL_BOOTSTRAP_API_KEY": self.api_key,
                "KENNEL_PUBLIC_URL": self.base_url,
                "KENNEL_MODEL": "offline",
                "KENNEL_SMTP_PORT": "0",
                "KENNEL_TASK_WAIT_SECONDS": "0",
            }
        )
        env.update(self.extra)
        return env

    def start(self, wait: bool = True, **env: str) -> Server:
        self.extra.update(env)
        self.starts += 1
        log = self.folder / f"{self.name}-{self.starts}.log"
        self.logs.append(log)
        cmd = [sys.executable, "-m", "kennel", "serve", "--host", "127.0.0.1"]
        with open(log, "wb") as err, open(log.with_suffix(".stdout"), "wb") as out:
            self.process = subprocess.Popen(
                [*cmd, "--port", str(self.port)],
                env=self.env(),
                cwd=self.folder,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        _PROCESSES.append(self.process)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = STARTUP_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited before it was healthy:\n{self.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/healthz").status_code == 200:
                        return
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not healthy after {timeout}s:\n{self.tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """SIGKILL to the whole process group: no shutdown code runs."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        _stop(self.process)

    def http(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=timeout,
        )

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, 15 s, then SIGKILL to its group (also whatever the server started)."""
    if process is None or process.poll() is not None:
        return  # already gone (and reaped): its group id may belong to someone else by now
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


_DBOS_LINE = re.compile(r"^\d\d:\d\d:\d\d \[\s*(?P<level>[A-Z]+)\]\s*(?P<message>.*)")
_BANNER = "KENNEL_MODEL is 'offline'"


def log_lines(servers: list[Server], levels: tuple[str, ...]) -> list[str]:
    """Lines of those levels in the servers' logs: Kennel's JSON lines and DBOS's own
    (`HH:MM:SS [LEVEL] ...`); a traceback under a WARNING is not an error."""
    found = []
    for server in servers:
        for line in server.log_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                match = _DBOS_LINE.match(line)
                if match and match["level"] in levels:
                    found.append(f"{server.name}: dbos {match['level']} {match['message'][:300]}")
                continue
            if isinstance(entry, dict) and entry.get("level") in levels:
                message = str(entry.get("message"))
                if _BANNER not in message:
                    found.append(f"{server.name}: {entry.get('time')} {message[:300]}")
    return found


# --------------------------------------------------------------------------- PostgreSQL


def _dsn(url: str, database: str) -> str:
    """`url` pointing at `database` instead, as a plain postgresql:// URL."""
    plain = make_url(url).set(drivername="postgresql", database=database)
    return plain.render_as_string(hide_password=False)


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """A new database `kennel_probe_<hex>`: (its URL, its name); dropped afterwards."""
    name = f"kennel_probe_{secrets.token_hex(4)}"
    admin = _dsn(admin_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    _DATABASES.append((admin, name))
    try:
        yield _dsn(admin_url, name), name
    finally:
        _drop(admin, name)


def _drop(admin: str, name: str) -> None:
    if (admin, name) in _DATABASES:
        _DATABASES.remove((admin, name))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def backends(conn: psycopg.Connection[Any], database: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
    ).fetchone()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------- figures


class Report:
    def __init__(self, label: str, out: Path | None) -> None:
        self.label, self.out = label, out

    def fig(self, scenario: str, figure: str, value: Any) -> None:
        print(f"{scenario} | {figure} | {value}", flush=True)
        self._write({"scenario": scenario, "figure": figure, "value": str(value)})

    def note(self, scenario: str, text: str) -> None:
        print(f"# {scenario}: {text}", flush=True)
        self._write({"scenario": scenario, "note": text})

    def _write(self, entry: dict[str, str]) -> None:
        if self.out is not None:
            with self.out.open("a") as f:
                f.write(json.dumps({"tree": self.label, **entry}) + "\n")

    def errors(self, scenario: str, servers: list[Server], show: int = 6) -> None:
        """The count of ERROR lines in the servers' logs; the first distinct ones, and the
        first distinct WARNINGs, as notes (the evidence behind the figures)."""
        errors = log_lines(servers, ("ERROR", "CRITICAL"))
        self.fig(scenario, "server log ERROR lines", len(errors))
        for line in _distinct(errors)[:show]:
            self.note(scenario, f"log ERROR: {line}")
        warnings = _distinct(log_lines(servers, ("WARNING",)))
        ours = [w for w in warnings if ": dbos " not in w][:show]  # Kennel's, then DBOS's
        for line in ours + [w for w in warnings if ": dbos " in w][: max(2, show - len(ours))]:
            self.note(scenario, f"log WARNING: {line}")


def _distinct(lines: list[str]) -> list[str]:
    """One line per message start (ids and times vary)."""
    seen: dict[str, str] = {}
    for line in lines:
        words = [w for w in line.split(" ")[2:] if not re.search(r"\d", w)]
        seen.setdefault(" ".join(words)[:80], line)
    return list(seen.values())


def tally(values: list[str]) -> str:
    """`completed 38, error/internal_error 2`, most frequent first; `-` when empty."""
    return ", ".join(f"{k} {n}" for k, n in Counter(values).most_common()) or "-"


def turn_state(http: httpx.Client, task_id: str) -> dict[str, Any]:
    """{status, code, completedAt} of the task's last turn, or status `http <n>` / `unreachable`."""
    try:
        r = http.get(f"/api/tasks/{task_id}")
    except httpx.TransportError as exc:
        return {"status": "unreachable", "code": type(exc).__name__, "completedAt": None}
    if r.status_code != 200:
        return {"status": f"http {r.status_code}", "code": r.text[:200], "completedAt": None}
    body = r.json()
    turns = body.get("turns") or []
    if not turns:
        return {"status": body["task"]["status"], "code": None, "completedAt": None}
    turn = turns[-1]
    error = turn.get("error") or {}
    return {"status": turn["status"], "code": error.get("code"), "completedAt": turn["completedAt"]}


def final_label(state: dict[str, Any]) -> str:
    return f"{state['status']}/{state['code']}" if state.get("code") else state["status"]


def states(http: httpx.Client, task_ids: list[str]) -> list[dict[str, Any]]:
    return [turn_state(http, t) for t in task_ids]


def wait_ended(
    http: httpx.Client, task_ids: list[str], timeout: float, every: float = 1.0
) -> tuple[list[dict[str, Any]], float | None]:
    """Poll until every turn ended or `timeout`: (the last states, seconds it took or None)."""
    began = time.monotonic()
    while True:
        found = states(http, task_ids)
        if all(s["status"] in ENDED for s in found):
            return found, time.monotonic() - began
        if time.monotonic() - began > timeout:
            return found, None
        time.sleep(every)


def epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def trace_lines(trace: Path) -> list[dict[str, Any]]:
    if not trace.exists():
        return []
    found = []
    for line in trace.read_text().splitlines():
        with contextlib.suppress(ValueError):
            found.append(json.loads(line))
    return found


def post_task(http: httpx.Client, body: dict[str, Any]) -> tuple[int | str, str | None, str]:
    """(status code or exception name, task id, body text)."""
    try:
        r = http.post("/api/tasks", json=body)
    except httpx.TransportError as exc:
        return type(exc).__name__, None, str(exc)
    task_id = None
    if r.status_code == 200:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            task_id = r.json()["metadata"]["taskId"]
    return r.status_code, task_id, r.text


# --------------------------------------------------------------------------- 1. takeover


def takeover(tree: Tree, report: Report, root: Path, admin_url: str, new_id: bool) -> None:
    name = "takeover-new-id" if new_id else "takeover"
    folder = root / name
    folder.mkdir()
    trace = folder / "model-trace.jsonl"
    env = {"KENNEL_OFFLINE_MODEL_DELAY_SECONDS": "1", "KENNEL_OFFLINE_MODEL_TRACE_FILE": str(trace)}
    explicit = not tree.unique_executor_ids
    ids = ("p1", "p2", "p3") if explicit else (None, None, None)
    if explicit:
        report.note(name, "the tree's default executor id is one fixed value: ids p1/p2, p3")
    with scratch_database(admin_url) as (url, _):
        key = tree.key()
        first = Server(tree, folder, "first", url, key, _with_id(env, ids[0]))
        second = Server(tree, folder, "second", url, key, _with_id(env, ids[1]))
        servers = [first, second]
        try:
            first.start()
            second.start()
            task_ids, codes = [], []
            with first.http() as on_first, second.http() as on_second:
                for n in range(40):
                    code, task_id, _ = post_task(
                        on_first if n % 2 == 0 else on_second, {"input": LONG_PROMPT.format(n)}
                    )
                    codes.append(code)
                    if task_id:
                        task_ids.append(task_id)
                time.sleep(3)
                on_first_now = {x["prompt"] for x in trace_lines(trace) if x["pid"] == first.pid}
                first_pid = first.pid
                first.kill9()
                killed_at, killed_wall = time.monotonic(), time.time()
                restarted = False
                active: dict[int, int] = {}
                found: list[dict[str, Any]] = []
                while True:
                    since = time.monotonic() - killed_at
                    if new_id and not restarted and since >= 5:
                        if explicit:
                            first.start(wait=False, KENNEL_EXECUTOR_ID="p3")
                        else:
                            first.start(wait=False)  # the default id: new with the new pid
                        restarted = True
                    found = states(on_second, task_ids)
                    pending = sum(s["status"] in ("pending", "running") for s in found)
                    for mark in (60, 120):
                        if since >= mark and mark not in active:
                            active[mark] = pending
                    if pending == 0 or since >= 120:
                        break
                    time.sleep(1)
            ends = [epoch(s["completedAt"]) for s in found]
            if all(s["status"] in ENDED for s in found):
                last = max((e for e in ends if e is not None), default=killed_wall)
                took: Any = f"{max(0.0, last - killed_wall):.1f}"
            else:
                left = sum(s["status"] not in ENDED for s in found)
                took = f"> 120 (still pending/running: {left})"
            requests = Counter(x["prompt"] for x in trace_lines(trace))
            report.fig(name, "POSTs answered 200 (of 40)", sum(c == 200 for c in codes))
            at_kill = sum(e is None or e > killed_wall for e in ends)
            report.fig(name, "turns not ended at the kill", at_kill)
            report.fig(name, "turns with a model request on the killed process", len(on_first_now))
            report.fig(name, "turns pending/running 60 s after the kill", active.get(60, 0))
            report.fig(name, "turns pending/running 120 s after the kill", active.get(120, 0))
            report.fig(name, "seconds from the kill until the last turn ended", took)
            report.fig(name, "turns by final status", tally([final_label(s) for s in found]))
            report.fig(name, "max model requests for one prompt", max(requests.values(), default=0))
            by_pid = Counter(x["pid"] for x in trace_lines(trace))
            report.note(
                name,
                f"model requests by process: killed {by_pid.get(first_pid, 0)}, other"
                f" {by_pid.get(second.pid, 0)}"
                + (f", restarted {by_pid.get(first.pid, 0)}" if new_id else ""),
            )
            if new_id:
                report.fig(name, "restarted process alive at the end", first.alive())
            report.errors(name, servers)
        finally:
            for server in servers:
                server.stop()


# 23 words: the offline answer ("Done: " and the prompt) streams in 8 chunks of 3 words, a pause
# before each, so a turn takes 8 s at 1 s a pause and is still running 3 s after the POSTs.
LONG_PROMPT = (
    "Count to {} please, slowly and out loud, one number after another, and when you reach"
    " the end say that you are done"
)


def _with_id(env: dict[str, str], executor_id: str | None) -> dict[str, str]:
    return {**env, "KENNEL_EXECUTOR_ID": executor_id} if executor_id else dict(env)


# --------------------------------------------------------------------------- 2. connections


def connections(tree: Tree, report: Report, root: Path, admin_url: str) -> None:
    name = "connections"
    folder = root / name
    folder.mkdir()
    env = {"KENNEL_OFFLINE_MODEL_DELAY_SECONDS": "0.2"}
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    with scratch_database(admin_url) as (url, database):
        key = tree.key()
        a = Server(tree, folder, "a", url, key, env)
        b = Server(tree, folder, "b", url, key, env)
        servers = [a, b]

        def count() -> None:  # from a connection to another database: it is not counted
            with psycopg.connect(_dsn(admin_url, "postgres"), autocommit=True) as conn:
                while not stop.is_set():
                    samples.append((time.monotonic(), backends(conn, database)))
                    time.sleep(0.05)

        counter = threading.Thread(target=count, daemon=True)
        try:
            a.start()
            b.start()
            counter.start()
            time.sleep(2)
            before = samples[-1][1] if samples else None
            began = time.monotonic()
            with a.http() as on_a, b.http() as on_b:

                def post(n: int) -> tuple[int | str, str | None, str]:
                    return post_task(on_a if n % 2 else on_b, {"input": f"Count to {n} please"})

                with ThreadPoolExecutor(16) as pool:
                    posted = list(pool.map(post, range(200)))
                task_ids = [t for _, t, _ in posted if t]
                found, _ = wait_ended(on_a, task_ids, timeout=240, every=0.5)
            ended = time.monotonic()
            peak = max((n for t, n in samples if began <= t <= ended), default=None)
            while time.monotonic() < ended + 75:
                time.sleep(0.5)
            idle = samples[-1][1] if samples else None
            codes = [c for c, _, _ in posted]
            report.fig(name, "backends before the load (both idle after start)", before)
            report.fig(name, "peak backends during the load", peak)
            report.fig(name, "backends 75 s after the load ended", idle)
            report.fig(
                name, "seconds of load (first POST until every turn ended)", f"{ended - began:.1f}"
            )
            report.fig(name, "POST answers", tally([str(c) for c in codes]))
            report.fig(name, "POST 5xx", sum(isinstance(c, int) and c >= 500 for c in codes))
            report.fig(name, "turns by final status", tally([final_label(s) for s in found]))
            for code, _, text in posted:
                if code != 200:
                    report.note(name, f"POST {code}: {text[:200]}")
                    break
            report.errors(name, servers)
        finally:
            stop.set()
            for server in servers:
                server.stop()
            counter.join(timeout=5)


# --------------------------------------------------------------------------- 3. webhooks


class HookReceiver:
    """POSTs on 127.0.0.1, answered `answers[n]` for the nth POST of an event (last repeats)."""

    def __init__(self, answers: tuple[int, ...] = (500, 500, 200)) -> None:
        self.answers = answers
        self.posts: list[tuple[str, int, float, str | None]] = []  # event, answer, when, task
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                event = self.headers.get("webhook-id")
                task = None
                with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                    parsed = json.loads(body)
                    task = parsed["task"]["id"]
                    event = event or parsed.get("id")
                event = event or "?"
                with receiver.lock:
                    n = receiver.seen[event]
                    receiver.seen[event] += 1
                    status = receiver.answers[min(n, len(receiver.answers) - 1)]
                    receiver.posts.append((event, status, time.time(), task))
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def total(self) -> int:
        with self.lock:
            return len(self.posts)

    def delivered(self) -> int:
        """Events answered 200 at least once."""
        with self.lock:
            return len({event for event, status, _, _ in self.posts if status == 200})

    def __enter__(self) -> HookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


WEBHOOK_SCHEDULE = "1s,1s,2s,4s"  # 4 attempts: the receiver's 500, 500, 200, and one spare


def webhooks(tree: Tree, report: Report, root: Path) -> None:
    name = "webhooks"
    folder = root / name
    folder.mkdir()
    if not tree.has("allow_private_webhooks") or not tree.has("webhook_retry_schedule"):
        report.fig(name, "n/a", "the tree lacks KENNEL_ALLOW_PRIVATE_WEBHOOKS or the schedule")
        return
    attempts_allowed = len(WEBHOOK_SCHEDULE.split(","))
    env = {
        "KENNEL_ALLOW_PRIVATE_WEBHOOKS": "true",
        "KENNEL_WEBHOOK_RETRY_SCHEDULE": WEBHOOK_SCHEDULE,
        "KENNEL_EXECUTOR_ID": "probe-webhooks",
    }
    url = f"sqlite:///{folder / 'kennel.sqlite3'}"
    server = Server(tree, folder, "server", url, tree.key(), env)
    with HookReceiver() as receiver:
        try:
            server.start()
            with server.http() as http:
                r = http.post("/api/workers", json={"title": "Probe hooks"})
                r.raise_for_status()
                worker_id = r.json()["id"]
                r = http.put(f"/api/workers/{worker_id}/webhook", json={"url": receiver.url})
                r.raise_for_status()
            # Four clients post the 500 tasks while deliveries go on and the kills come: a POST
            # refused while the server is down (connect error: never received) is sent again;
            # one cut off by the kill is not (it may have been recorded), and counted.
            numbers = iter(range(500))
            codes: list[int | str] = []
            lock = threading.Lock()

            def post() -> None:
                with server.http() as http:
                    while True:
                        with lock:
                            n = next(numbers, None)
                        if n is None:
                            return
                        body = {"input": f"Ping {n} please", "workerId": worker_id}
                        give_up = time.monotonic() + 120
                        while True:
                            try:
                                code: int | str = http.post("/api/tasks", json=body).status_code
                            except httpx.ConnectError:
                                if time.monotonic() < give_up:
                                    time.sleep(0.3)
                                    continue
                                code = "refused for 120 s"
                            except httpx.TransportError as exc:
                                code = f"cut off ({type(exc).__name__})"
                            codes.append(code)
                            break

            posters = [threading.Thread(target=post, daemon=True) for _ in range(4)]
            for poster in posters:
                poster.start()
            kills = []
            need = 300  # kill 1 once 300 POSTs came in, kill 2 once 300 more came in after
            for round_ in (1, 2):
                deadline = time.monotonic() + 120
                while receiver.total() < need and time.monotonic() < deadline:
                    time.sleep(0.05)
                kills.append(receiver.total())
                pending = len(receiver.seen) - receiver.delivered()
                server.kill9()
                time.sleep(0.5)
                server.start()
                need = receiver.total() + 300
                report.note(
                    name,
                    f"kill {round_} after {kills[-1]} POSTs received ({pending} events under way,"
                    f" {len(codes)} tasks posted); restarted with the same id, healthy at"
                    f" {need - 300} POSTs",
                )
            for poster in posters:
                poster.join(timeout=300)
            report.fig(name, "task POSTs", tally([str(c) for c in codes]))
            with server.http() as http:
                task_ids = list_tasks(http, worker_id)
            report.fig(name, "tasks on the worker", len(task_ids))
            report.fig(name, "POSTs received when the two kills came", f"{kills[0]}, {kills[1]}")
            with server.http() as http:
                # Settled: neither the receiver nor the log changed for 20 s (the schedule's
                # longest wait is 4 s), at most 5 minutes after the last restart.
                last, steady_since = None, time.monotonic()
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    r = http.get(f"/api/workers/{worker_id}/webhook/executions")
                    now = (receiver.total(), r.json().get("totalCount") if r.is_success else None)
                    if now != last:
                        last, steady_since = now, time.monotonic()
                    elif time.monotonic() - steady_since > 20:
                        break
                    time.sleep(1)
                else:
                    report.note(name, "not settled 300 s after the last restart")
                logged = read_executions(http, worker_id)
                found = states(http, task_ids)
            _webhook_figures(report, name, receiver, logged, task_ids, found, attempts_allowed)
            report.errors(name, [server])
        finally:
            server.stop()


def read_executions(http: httpx.Client, worker_id: str) -> list[dict[str, Any]]:
    path = f"/api/workers/{worker_id}/webhook/executions"
    first = http.get(path, params={"page": 1}).json()
    logs = list(first["logs"])
    for page in range(2, int(first["pageCount"]) + 1):
        logs.extend(http.get(path, params={"page": page}).json()["logs"])
    if len(logs) != first["totalCount"] or len({x["id"] for x in logs}) != len(logs):
        raise RuntimeError("the delivery log changed while it was read")
    return logs


def _webhook_figures(
    report: Report,
    name: str,
    receiver: HookReceiver,
    logged: list[dict[str, Any]],
    task_ids: list[str],
    found: list[dict[str, Any]],
    attempts_allowed: int,
) -> None:
    received = Counter(event for event, _, _, _ in receiver.posts)
    answered_200 = {event for event, status, _, _ in receiver.posts if status == 200}
    after_200: Counter[str] = Counter()
    done: set[str] = set()
    for event, status, _, _ in receiver.posts:
        if event in done:
            after_200[event] += 1
        if status == 200:
            done.add(event)
    tasks_of = defaultdict(set)
    for event, _, _, task in receiver.posts:
        tasks_of[task].add(event)
    per_event = Counter(x["eventId"] for x in logged)
    top_attempt: dict[str, int] = defaultdict(int)
    for x in logged:
        top_attempt[x["eventId"]] = max(top_attempt[x["eventId"]], int(x["attempt"]))
    events = set(received) | set(per_event)
    mismatched = sorted(e for e in events if per_event.get(e, 0) != received.get(e, 0))
    outcomes = Counter(x.get("outcome", x["requestStatus"]) for x in logged)
    report.fig(name, "POSTs the receiver got", len(receiver.posts))
    report.fig(name, "events the receiver got", len(received))
    report.fig(name, "tasks with no event received", sum(1 for t in task_ids if t not in tasks_of))
    report.fig(
        name, "tasks with more than one event id", sum(len(v) > 1 for v in tasks_of.values())
    )
    report.fig(name, "attempts in the delivery log", len(logged))
    report.fig(name, "delivery log outcomes", tally([str(o) for o in outcomes.elements()]))
    report.fig(name, "events whose logged attempts differ from the POSTs received", len(mismatched))
    for event in mismatched[:5]:
        rows = sorted(
            (int(x["attempt"]), x.get("outcome", x["requestStatus"]), x["responseStatus"])
            for x in logged
            if x["eventId"] == event
        )
        answers = [status for e, status, _, _ in receiver.posts if e == event]
        report.note(name, f"{event}: received and answered {answers}; logged {rows}")
    report.fig(
        name,
        f"max attempts for one event, logged / received (schedule: {attempts_allowed})",
        f"{max(per_event.values(), default=0)} / {max(received.values(), default=0)}",
    )
    report.fig(name, "max attempt number in the log", max(top_attempt.values(), default=0))
    report.fig(name, "events never answered 200", len(events - answered_200))
    report.fig(name, "POSTs after the event was answered 200", sum(after_200.values()))
    report.fig(name, "turns by final status", tally([final_label(s) for s in found]))


# --------------------------------------------------------------------------- 4. storm


def storm(tree: Tree, report: Report, root: Path, admin_url: str) -> None:
    name = "storm"
    folder = root / name
    folder.mkdir()
    env = {"KENNEL_OFFLINE_MODEL_DELAY_SECONDS": "0.3"}
    with scratch_database(admin_url) as (url, database):
        server = Server(tree, folder, "server", url, tree.key(), env)
        terminated: list[int] = []
        polls: list[int | str] = []
        task_ids: list[str] = []
        storming = threading.Event()

        def terminate() -> None:
            with psycopg.connect(_dsn(admin_url, "postgres"), autocommit=True) as conn:
                for _ in range(20):
                    rows = conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = %s AND pid <> pg_backend_pid()",
                        (database,),
                    ).fetchall()
                    terminated.append(sum(1 for (ok,) in rows if ok))
                    time.sleep(0.5)
            storming.clear()

        def poll() -> None:
            with server.http(timeout=10) as http:
                while storming.is_set():
                    for task_id in list(task_ids):
                        if not storming.is_set():
                            break
                        try:
                            polls.append(http.get(f"/api/tasks/{task_id}").status_code)
                        except httpx.TransportError as exc:
                            polls.append(type(exc).__name__)
                    time.sleep(0.05)

        try:
            server.start()
            storming.set()
            killer = threading.Thread(target=terminate, daemon=True)
            poller = threading.Thread(target=poll, daemon=True)
            killer.start()
            poller.start()
            posted: list[tuple[int | str, str | None, str]] = []
            with server.http() as http:
                for n in range(60):  # 10 a second: turns start all through the storm
                    result = post_task(http, {"input": f"Count to {n} please"})
                    posted.append(result)
                    if result[1]:
                        task_ids.append(result[1])
                    time.sleep(0.1)
                killer.join()
                poller.join()
                found, _ = wait_ended(http, task_ids, timeout=120)
                healthy = http.get("/healthz").status_code
            codes = [c for c, _, _ in posted]
            report.fig(name, "backends terminated (20 rounds)", sum(terminated))
            report.fig(name, "POST answers", tally([str(c) for c in codes]))
            report.fig(name, "POST 5xx", sum(isinstance(c, int) and c >= 500 for c in codes))
            report.fig(name, "GET polls during the storm", len(polls))
            report.fig(
                name,
                "GET 5xx during the storm",
                sum(isinstance(c, int) and c >= 500 for c in polls),
            )
            report.fig(
                name, "GET answers other than 200", tally([str(c) for c in polls if c != 200])
            )
            report.fig(name, "turns by final status", tally([final_label(s) for s in found]))
            report.fig(name, "healthz after the storm", healthy)
            for code, _, text in posted:
                if code != 200:
                    report.note(name, f"POST {code}: {text[:200]}")
                    break
            report.errors(name, [server])
        finally:
            storming.clear()
            server.stop()


# --------------------------------------------------------------------------- 5. disk


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )
    _MOUNTS.append(path)
    try:
        yield path
    finally:
        _unmount(path)


def _unmount(path: Path) -> None:
    if path in _MOUNTS:
        _MOUNTS.remove(path)
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> int:
    """Write zeros to `path` until the disk is full; the bytes written."""
    written = 0
    block = b"\0" * (256 * 1024)
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                block = block[: len(block) // 2]
                if len(block) < 512:
                    return written


def disk(tree: Tree, report: Report, root: Path) -> None:
    name = "disk"
    folder = root / name
    folder.mkdir()
    env = {"KENNEL_OFFLINE_MODEL_DELAY_SECONDS": "1"}
    with small_disk(folder / "disk", "64m") as mounted:
        url = f"sqlite:///{mounted / 'kennel.sqlite3'}"
        server = Server(tree, folder, "server", url, tree.key(), env)
        filler = mounted / "filler"
        try:
            server.start()
            with server.http() as http:
                code, task_id, text = post_task(http, {"input": "Count the dogs please"})
                if not task_id:
                    raise RuntimeError(f"first POST: {code} {text[:300]}")
                deadline = time.monotonic() + 30
                while turn_state(http, task_id)["status"] != "running":
                    if time.monotonic() > deadline:
                        raise RuntimeError("the first turn never ran")
                    time.sleep(0.1)
                fill(filler)
                answers = []
                for n in range(10):  # big inputs: new pages, which a full disk cannot take
                    answers.append(post_task(http, {"input": f"{n} " + "word " * 19_000}))
                time.sleep(3)
                while_full = turn_state(http, task_id)
                filler.unlink()
                end, took = wait_ended(http, [task_id], timeout=60, every=0.2)
                after = post_task(http, {"input": "Count the cats please"})
            codes = [c for c, _, _ in answers]
            texts = [t.lower() for _, _, t in answers]
            report.fig(name, "POST answers while full", tally([str(c) for c in codes]))
            report.fig(name, "POST bodies saying 'bug'", sum("bug" in t for t in texts))
            report.fig(
                name, "POST bodies saying 'disk is full'", sum("disk is full" in t for t in texts)
            )
            report.fig(name, "in-flight turn 3 s into the full disk", final_label(while_full))
            report.fig(name, "in-flight turn at its end", final_label(end[0]))
            report.fig(
                name,
                "seconds from freeing the disk to the turn's end",
                f"{took:.1f}" if took is not None else "> 60",
            )
            report.fig(name, "POST after freeing", after[0])
            report.fig(
                name, "server log lines saying 'bug'", server.log_text().lower().count("bug")
            )
            for code, _, text in answers[:1]:
                report.note(name, f"first POST while full: {code} {text[:200]}")
            report.errors(name, [server])
        finally:
            server.stop()
            with contextlib.suppress(FileNotFoundError):
                filler.unlink()


# --------------------------------------------------------------------------- 6. sigterm


def sigterm(tree: Tree, report: Report, root: Path) -> None:
    name = "sigterm"
    folder = root / name
    folder.mkdir()
    trace = folder / "model-trace.jsonl"
    env = {
        "KENNEL_OFFLINE_MODEL_DELAY_SECONDS": "90",
        "KENNEL_OFFLINE_MODEL_TRACE_FILE": str(trace),
        "KENNEL_TASK_WAIT_SECONDS": "40",
        "KENNEL_EXECUTOR_ID": "probe-sigterm",
    }
    url = f"sqlite:///{folder / 'kennel.sqlite3'}"
    server = Server(tree, folder, "server", url, tree.key(), env)
    streams: list[list[Any]] = [[] for _ in range(10)]
    waited: list[Any] = []
    auth = {"Authorization": f"Bearer {server.api_key}"}

    def stream(found: list[Any], n: int) -> None:
        body = {"input": f"Stream {n} please", "stream": True}
        try:
            with (
                httpx.Client(base_url=server.base_url, timeout=150) as http,
                http.stream("POST", "/api/tasks", json=body, headers=auth) as r,
            ):
                found.append(r.status_code)
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        data = line.removeprefix("data: ")
                        found.append(data if data == "[DONE]" else json.loads(data))
        except httpx.HTTPError as exc:
            found.append(f"cut off: {type(exc).__name__}")

    def wait(n: int) -> None:
        try:
            with httpx.Client(base_url=server.base_url, timeout=150) as http:
                waited.append(
                    http.post("/api/tasks", json={"input": f"Wait {n} please"}, headers=auth)
                )
        except httpx.HTTPError as exc:
            waited.append(f"cut off: {type(exc).__name__}")

    clients = [
        threading.Thread(target=stream, args=(streams[n], n), daemon=True) for n in range(10)
    ]
    clients += [threading.Thread(target=wait, args=(n,), daemon=True) for n in range(10)]
    try:
        server.start()
        for client in clients:
            client.start()
        deadline = time.monotonic() + 60
        while len(trace_lines(trace)) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        report.fig(name, "model requests under way at the signal (of 20)", len(trace_lines(trace)))
        time.sleep(1)
        assert server.process is not None
        stopped_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=120)
            report.fig(name, "seconds from SIGTERM to exit", f"{time.monotonic() - stopped_at:.1f}")
            report.fig(name, "exit code", server.process.returncode)
        except subprocess.TimeoutExpired:
            report.fig(name, "seconds from SIGTERM to exit", "> 120 (then killed)")
            server.kill9()
        for client in clients:
            client.join(timeout=30)
        stream_ends = []
        for found in streams:
            errors = [e for e in found if isinstance(e, dict) and e.get("type") == "error"]
            if errors:
                stream_ends.append("error " + str(errors[-1].get("errorText", "")).split(":")[0])
            elif found and found[-1] == "[DONE]":
                stream_ends.append("[DONE] without error")
            else:
                stream_ends.append(str(found[-1]) if found else "nothing")
            if found and found[-1] == "[DONE]":
                stream_ends[-1] += " +[DONE]"
        report.fig(name, "streams ended", tally(stream_ends))
        wait_ends = []
        for answer in waited:
            if isinstance(answer, httpx.Response):
                running = ""
                with contextlib.suppress(ValueError, AttributeError):
                    running = f" running={answer.json().get('running')}"
                wait_ends.append(f"{answer.status_code}{running}")
            else:
                wait_ends.append(str(answer))
        report.fig(name, "waiting POSTs ended", tally(wait_ends))
        report.errors(name, [server])
        # The next process, same executor id, no model delay: does it finish the 20 turns?
        server.start(KENNEL_OFFLINE_MODEL_DELAY_SECONDS="0")
        with server.http() as http:
            task_ids = list_tasks(http)
            found, took = wait_ended(http, task_ids, timeout=60, every=0.5)
        report.fig(name, "tasks after the restart", len(task_ids))
        report.fig(
            name,
            "turns by final status after a restart (same id)",
            tally([final_label(s) for s in found]),
        )
        report.fig(name, "seconds until they ended", f"{took:.1f}" if took is not None else "> 60")
    finally:
        server.stop()


def list_tasks(http: httpx.Client, worker_id: str | None = None) -> list[str]:
    query: dict[str, Any] = {"workerId": worker_id} if worker_id else {}
    first = http.get("/api/tasks", params={**query, "page": 1}).json()
    tasks = list(first["tasks"])
    for page in range(2, int(first["pageCount"]) + 1):
        tasks.extend(http.get("/api/tasks", params={**query, "page": page}).json()["tasks"])
    return [t["id"] for t in tasks]


# --------------------------------------------------------------------------- table


def table(files: list[Path]) -> str:
    """Markdown: scenario, figure, then one column per file (its tree label)."""
    labels, values, order, notes = [], {}, [], defaultdict(list)
    for path in files:
        label = None
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            label = entry["tree"]
            if "note" in entry:
                notes[label].append(f"{entry['scenario']}: {entry['note']}")
                continue
            key = (entry["scenario"], entry["figure"])
            if key not in order:
                order.append(key)
            values[(label, *key)] = entry["value"]
        labels.append(label or path.stem)
    rows = [
        "| scenario | figure | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for scenario, figure in sorted(
        order, key=lambda k: SCENARIOS.index(k[0]) if k[0] in SCENARIOS else 99
    ):
        cells = [values.get((label, scenario, figure), "").replace("|", "\\|") for label in labels]
        rows.append(f"| {scenario} | {figure} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- main


def cleanup() -> None:
    for process in list(_PROCESSES):
        _stop(process)
    _PROCESSES.clear()
    for admin, name in list(_DATABASES):
        with contextlib.suppress(Exception):
            _drop(admin, name)
    for path in list(_MOUNTS):
        _unmount(path)


def run(scenario: str, tree: Tree, report: Report, root: Path, admin_url: str) -> None:
    began = time.monotonic()
    print(f"== {scenario} ({tree.src})", flush=True)
    steps: dict[str, Callable[[], None]] = {
        "takeover": lambda: takeover(tree, report, root, admin_url, new_id=False),
        "takeover-new-id": lambda: takeover(tree, report, root, admin_url, new_id=True),
        "connections": lambda: connections(tree, report, root, admin_url),
        "webhooks": lambda: webhooks(tree, report, root),
        "storm": lambda: storm(tree, report, root, admin_url),
        "disk": lambda: disk(tree, report, root),
        "sigterm": lambda: sigterm(tree, report, root),
    }
    try:
        steps[scenario]()
    except Exception as exc:  # one scenario's failure is a figure, not the end of `all`
        report.fig(scenario, "probe failed", f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        cleanup()
        print(f"== {scenario} took {time.monotonic() - began:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=[*SCENARIOS, "all", "table"])
    parser.add_argument("files", nargs="*", type=Path, help="table: the --out files to compare")
    parser.add_argument("--tree", type=Path, default=Path(__file__).parent.parent / "src")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", type=Path, help="append the figures here as JSON lines")
    parser.add_argument("--label", help="the tree's name in --out (default: its path)")
    parser.add_argument("--workdir", type=Path, help="where server logs go (default: a temp dir)")
    args = parser.parse_args()
    if args.scenario == "table":
        print(table(args.files), end="")
        return

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    tree = Tree(args.tree)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="kennel-faults-"))
    root = root / f"{time.strftime('%H%M%S')}-{secrets.token_hex(2)}"
    root.mkdir(parents=True)
    print(f"# logs in {root}", flush=True)
    report = Report(args.label or str(tree.src), args.out)
    try:
        for scenario in SCENARIOS if args.scenario == "all" else [args.scenario]:
            run(scenario, tree, report, root, args.postgres)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
