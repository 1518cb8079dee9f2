"""How big the database grows per 1,000 turns, and what `kennel prune` takes back.

Hand-run, not a test: `python bench/prune.py [--turns 2000] [--postgres URL]` (SQLite always;
PostgreSQL too with `--postgres`, a server URL whose user may create databases).

The real `kennel serve` runs with the offline model and a webhook on every worker (a local
receiver answering 200), so each turn leaves what a real one leaves: the task and turn rows,
the turn's messages, its webhook event and delivery attempt, its idempotency key, and DBOS's
rows (the turn's workflow and steps, its event stream, the webhook listener's workflow). Half
the turns are tasks of two, half tasks of one, over 10 workers. The server is stopped, the
tasks of half the workers (and their rows) are dated back 40 days, and `kennel prune --days 30`
runs. Printed for before and after: rows per table, bytes per table (SQLite: `dbstat`;
PostgreSQL: `pg_total_relation_size`), and the whole database (SQLite: the file, and the file
after VACUUM; PostgreSQL: `pg_database_size`, and after VACUUM FULL), and the bytes per 1,000
turns.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from _machine import free_port
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

WORKERS = 10
OLD = timedelta(days=40)
KENNEL_TABLES = (
    "tasks",
    "turns",
    "turn_files",
    "mail_threads",
    "mail_messages",
    "webhook_events",
    "webhook_executions",
    "schedule_runs",
    "idempotency_keys",
)
DBOS_TABLES = (
    "workflow_status",
    "workflow_input",
    "workflow_output",
    "operation_outputs",
    "streams",
    "workflow_events",
    "workflow_events_history",
    "notifications",
)


class _Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def receiver() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


def environment(tmp: Path, database_url: str, key: str, port: int) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("KENNEL_")},
        "PYTHONPATH": str(ROOT / "src"),
        "KENNEL_DATABASE_URL": database_url,
        "KENNEL_DATA_DIR": str(tmp / "data"),
        "KENNEL_BOOTSTRAP_API_KEY": key,
        "KENNEL_MODEL": "offline",
        "KENNEL_LOG_LEVEL": "WARNING",
        "KENNEL_SMTP_ENABLED": "false",
        "KENNEL_ALLOW_PRIVATE_WEBHOOKS": "true",
        "KENNEL_PORT": str(port),
        "KENNEL_HOST": "127.0.0.1",
    }


@contextlib.contextmanager
def server(env: dict[str, str], tmp: Path) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "kennel", "serve"],
        env=env,
        stdout=(tmp / "server.stdout").open("wb"),
        stderr=(tmp / "server.log").open("wb"),
    )
    base = f"http://127.0.0.1:{env['KENNEL_PORT']}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((tmp / "server.log").read_text()[-3000:])
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=60)


def load(base: str, key: str, turns: int, hook: str) -> tuple[list[str], float]:
    """Make `turns` turns; the workers' ids, and the seconds it took."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        workers = []
        for n in range(WORKERS):
            r = http.post("/api/workers", json={"instructions": f"Worker {n}: answer briefly."})
            r.raise_for_status()
            workers.append(r.json()["id"])
            http.put(f"/api/workers/{workers[-1]}/webhook", json={"url": hook}).raise_for_status()

    def task(n: int) -> int:
        """Task n: two turns when n is even, one when odd."""
        with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
            body = {"input": f"Question {n}: how many dogs?", "workerId": workers[n % WORKERS]}
            r = http.post("/api/tasks", json=body, headers={"Idempotency-Key": f"k-{n}"})
            r.raise_for_status()
            if n % 2:
                return 1
            follow = {"input": "And cats?", "taskId": r.json()["metadata"]["taskId"]}
            http.post("/api/tasks", json=follow).raise_for_status()
            return 2

    plan: list[int] = []  # tasks' numbers, alternately of two turns and of one
    while sum(2 if n % 2 == 0 else 1 for n in plan) < turns:
        left = turns - sum(2 if n % 2 == 0 else 1 for n in plan)
        plan.append(len(plan) if left > 1 or len(plan) % 2 else len(plan) + 1)
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        made = sum(pool.map(task, plan))
    assert made == turns, (made, turns)
    return workers, time.monotonic() - started


def system_table(backend: str, name: str) -> str:
    return name if backend == "sqlite" else f"dbos.{name}"


def engine_for(database_url: str):  # type: ignore[no-untyped-def]
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url)


def wait_for_deliveries(database_url: str, events: int) -> None:
    """Until every turn's webhook event has a finished attempt (the listeners run after)."""
    engine = engine_for(database_url)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            with engine.connect() as c:
                done = c.execute(
                    text("SELECT count(*) FROM webhook_executions WHERE request_status = 'success'")
                ).scalar_one()
            if done >= events:
                return
            time.sleep(1)
    finally:
        engine.dispose()
    raise SystemExit(f"only {done} of {events} deliveries finished")


def age_half(database_url: str, backend: str, workers: list[str]) -> None:
    """Date the tasks of the first half of the workers, and their rows, back 40 days."""
    old = workers[: len(workers) // 2]
    then = datetime.now(UTC) - OLD
    ms = int(then.timestamp() * 1000)
    engine = engine_for(database_url)
    params = {f"w{i}": w for i, w in enumerate(old)}
    within = "(" + ", ".join(f":w{i}" for i in range(len(old))) + ")"
    try:
        with engine.begin() as c:
            turn_ids = [
                row[0]
                for row in c.execute(
                    text(
                        "SELECT turns.id FROM turns JOIN tasks ON tasks.id = turns.task_id"
                        f" WHERE tasks.worker_id IN {within}"
                    ),
                    params,
                )
            ]
            c.execute(
                text(
                    "UPDATE tasks SET created_at = :t, last_turn_at = :t, completed_at = :t"
                    f" WHERE worker_id IN {within}"
                ),
                {**params, "t": then},
            )
            c.execute(
                text(f"UPDATE webhook_events SET created_at = :t WHERE worker_id IN {within}"),
                {**params, "t": then},
            )
            for start in range(0, len(turn_ids), 500):
                chunk = turn_ids[start : start + 500]
                ids = {f"i{i}": t for i, t in enumerate(chunk)}
                inside = "(" + ", ".join(f":i{i}" for i in range(len(chunk))) + ")"
                hooks = {f"h{i}": f"{t}:webhook" for i, t in enumerate(chunk)}
                named = "(" + ", ".join(f":h{i}" for i in range(len(chunk))) + ")"
                c.execute(
                    text(
                        f"UPDATE {system_table(backend, 'workflow_status')} SET created_at = :ms"
                        f" WHERE workflow_uuid IN {inside} OR workflow_uuid IN {named}"
                    ),
                    {**ids, **hooks, "ms": ms},
                )
                c.execute(
                    text(
                        f"UPDATE idempotency_keys SET created_at = :t WHERE resource_id IN {inside}"
                    ),
                    {**ids, "t": then},
                )
    finally:
        engine.dispose()


def measure(database_url: str, backend: str, tmp: Path) -> dict[str, int]:
    """Rows and bytes per table, and the database's size: `{"rows:<t>": n, "bytes:<t>": n}`."""
    found: dict[str, int] = {}
    tables = [*KENNEL_TABLES, *(f"dbos:{t}" for t in DBOS_TABLES)]
    engine = engine_for(database_url)
    try:
        with engine.connect() as c:
            for table in tables:
                name = system_table(backend, table[5:]) if table.startswith("dbos:") else table
                found[f"rows:{table}"] = c.execute(
                    text(f"SELECT count(*) FROM {name}")
                ).scalar_one()
            if backend == "postgresql":
                for table in tables:
                    name = system_table(backend, table[5:]) if table.startswith("dbos:") else table
                    found[f"bytes:{table}"] = c.execute(
                        text(f"SELECT pg_total_relation_size('{name}')")
                    ).scalar_one()
                found["bytes:database"] = c.execute(
                    text("SELECT pg_database_size(current_database())")
                ).scalar_one()
    finally:
        engine.dispose()
    if backend == "sqlite":
        path = Path(make_url(database_url).database or "")
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            found["bytes:database"] = path.stat().st_size
            compact = tmp / f"vacuumed-{secrets.token_hex(3)}.sqlite3"
            db.execute("VACUUM INTO ?", (str(compact),))
        with contextlib.closing(sqlite3.connect(compact)) as db:
            sizes = dict(
                db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
            )
            for table in tables:
                name = table[5:] if table.startswith("dbos:") else table
                # A table's bytes with its indexes' (named after it, or sqlite_autoindex_<t>_n).
                found[f"bytes:{table}"] = sum(
                    size
                    for index, size in sizes.items()
                    if index == name
                    or re.fullmatch(rf"(ix|uq|pk)_{name}_.*|sqlite_autoindex_{name}_\d+", index)
                )
        found["bytes:vacuumed"] = compact.stat().st_size
        compact.unlink()
    return found


def full_vacuum(database_url: str) -> int:
    engine = engine_for(database_url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            c.execute(text("VACUUM FULL"))
            return int(c.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    finally:
        engine.dispose()


def report(label: str, turns: int, before: dict[str, int], after: dict[str, int]) -> None:
    print(f"\n## {label}: {turns} turns, then `kennel prune --days 30` (half of them 40 days old)")
    print(f"{'table':<24}{'rows before':>12}{'rows after':>12}{'KiB before':>12}{'KiB after':>12}")
    for key in before:
        if key.startswith("rows:"):
            table = key[5:]
            print(
                f"{table:<24}{before[key]:>12}{after[key]:>12}"
                f"{before.get('bytes:' + table, 0) / 1024:>12.0f}"
                f"{after.get('bytes:' + table, 0) / 1024:>12.0f}"
            )
    for key in ("bytes:database", "bytes:vacuumed"):
        if key in before:
            print(f"{key[6:]:<24}{'':>24}{before[key] / 1024:>12.0f}{after[key] / 1024:>12.0f}")
    gone = before["rows:turns"] - after["rows:turns"]
    freed = before["bytes:vacuumed"] - after["bytes:vacuumed"]
    print(
        f"compacted size: {before['bytes:vacuumed'] / 1024 / 1024:.2f} MiB before,"
        f" {after['bytes:vacuumed'] / 1024 / 1024:.2f} MiB after"
    )
    if gone:
        print(
            f"per 1,000 turns (what the prune of {gone} turns freed, compacted):"
            f" {freed / gone * 1000 / 1024 / 1024:.2f} MiB"
        )
    every = [*KENNEL_TABLES, *(f"dbos:{t}" for t in DBOS_TABLES)]
    tables = sum(before[f"bytes:{t}"] for t in every)
    print(
        f"per 1,000 turns (the tables above, before): {tables / turns * 1000 / 1024 / 1024:.2f} MiB"
    )


def run(backend: str, database_url: str, turns: int, tmp: Path) -> None:
    from kennel.auth.keys import generate_key

    key = generate_key()
    env = environment(tmp, database_url, key, free_port())
    with receiver() as hook, server(env, tmp) as base:
        workers, seconds = load(base, key, turns, hook)
        wait_for_deliveries(database_url, turns)
    print(f"\n{backend}: {turns} turns made in {seconds:.0f} s")
    age_half(database_url, backend, workers)
    before = measure(database_url, backend, tmp)
    if backend == "postgresql":  # compacted too, to compare like with like
        before["bytes:vacuumed"] = full_vacuum(database_url)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "kennel", "prune", "--days", "30"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    print(f"kennel prune: {time.monotonic() - started:.1f} s (the command, imports included)")
    print("\n".join(done.stdout.strip().splitlines()[-2:]))  # the summary, the longest
    after = measure(database_url, backend, tmp)
    if backend == "postgresql":
        after["bytes:vacuumed"] = full_vacuum(database_url)
    report(backend, turns, before, after)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (a scratch database is made)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        (tmp / "sqlite").mkdir()
        run("sqlite", f"sqlite:///{tmp / 'sqlite' / 'kennel.sqlite3'}", args.turns, tmp / "sqlite")
        if args.postgres:
            import psycopg

            admin = make_url(args.postgres).set(drivername="postgresql")
            name = f"kennel_bench_prune_{secrets.token_hex(3)}"
            dsn = admin.render_as_string(hide_password=False)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            try:
                (tmp / "pg").mkdir()
                url = admin.set(database=name).render_as_string(hide_password=False)
                run("postgresql", url, args.turns, tmp / "pg")
            finally:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
