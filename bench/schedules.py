"""How late schedules fire, and what a server costs while many wait.

Hand-run, not a test: `.venv/bin/python bench/schedules.py [--postgres URL] [--waiting 100000]`.

It starts the real `kennel serve` on a fresh database and then:

1. Lateness: for 1, 100 and 1,000 schedules due in the same second (one-shots, `scheduled` at
   one date a few seconds ahead, made through the API), the task each starts is read back and
   its `createdAt` minus the due time is its lateness: p50, p99 and max. Aims on SQLite: p99
   <= 250 ms at 100, <= 1 s at 1,000.
2. Idle cost: the server's CPU over 20 s with no schedules, then with `--waiting` schedules a
   year ahead (written straight into the database: the API would take minutes), as a fraction
   of one core. Aim: under 2 % with 100,000 waiting.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _machine import cpu_seconds, free_port
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

PYTHON = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class Served:
    process: subprocess.Popen[bytes]
    base: str
    key: str
    database_url: str


def start(tmp: Path, database_url: str) -> tuple[subprocess.Popen[bytes], str, str]:
    from kennel.auth.keys import generate_key

    port, key = free_port(), generate_key()
    env = {
        **os.environ,
        "KENNEL_DATABASE_URL": database_url,
        "KENNEL_DATA_DIR": str(tmp / "data"),
        "KENNEL_BOOTSTRAP_API_KEY": key,
        "KENNEL_LOG_LEVEL": "WARNING",
        "KENNEL_SMTP_PORT": "0",
        "KENNEL_TASK_WAIT_SECONDS": "0",
        "KENNEL_MAX_SCHEDULES_PER_WORKER": "1000000",
    }
    process = subprocess.Popen(
        [str(PYTHON), "-m", "kennel", "serve", "--port", str(port)],
        env=env,
        stdout=(tmp / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return process, base, key
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit((tmp / "server.log").read_text()[-3000:])


@contextlib.contextmanager
def served(label: str, postgres: str | None) -> Iterator[Served]:
    """`kennel serve` on a fresh database (a scratch one on the `postgres` server, dropped
    afterwards, or a SQLite file in a temp folder), stopped at the end; the bench's title line
    printed."""
    import asyncio

    from _machine import scratch_postgres

    with tempfile.TemporaryDirectory(prefix=f"kennel-bench-{label}-") as folder:
        tmp = Path(folder)
        name = f"kennel_bench_{label}_{os.getpid()}"
        if postgres:
            asyncio.run(scratch_postgres(postgres, name, create=True))
            database_url = (
                make_url(postgres).set(database=name).render_as_string(hide_password=False)
            )
        else:
            database_url = f"sqlite:///{tmp / 'kennel.sqlite3'}"
        process, base, key = start(tmp, database_url)
        try:
            backend = "PostgreSQL" if postgres else "SQLite"
            print(f"Kennel {label} bench: {backend}, {os.cpu_count()} CPUs")
            yield Served(process, base, key, database_url)
        finally:
            process.terminate()
            process.wait(timeout=60)
            if postgres:
                asyncio.run(scratch_postgres(postgres, name, create=False))


def instant(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def lateness(http: httpx.Client, count: int) -> list[float]:
    worker = http.post("/api/workers", json={"title": f"Bench {count}"}).json()["id"]
    # Far enough ahead that every schedule is made first (about 3 ms each here).
    due = (datetime.now(UTC) + timedelta(seconds=3 + count * 0.006)).replace(microsecond=0)
    for _ in range(count):
        r = http.post(
            f"/api/workers/{worker}/schedules",
            json={"input": "Tick", "when": {"type": "scheduled", "date": due.isoformat()}},
        )
        assert r.status_code == 201, r.text
    assert datetime.now(UTC) < due, "making the schedules took past their due time"
    deadline = time.monotonic() + 120
    while True:
        total = http.get("/api/tasks", params={"workerId": worker}).json()["totalCount"]
        if total >= count:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"only {total} of {count} fired")
        time.sleep(0.2)
    late: list[float] = []
    page = 1
    while len(late) < count:
        body = http.get("/api/tasks", params={"workerId": worker, "page": page}).json()
        late += [(instant(t["createdAt"]) - due).total_seconds() for t in body["tasks"]]
        page += 1
    return late


def settle(http: httpx.Client) -> None:
    """Wait until no task is pending or running: their turns would count as idle CPU."""
    deadline = time.monotonic() + 300
    while any(
        http.get("/api/tasks", params={"status": status}).json()["totalCount"]
        for status in ("pending", "running")
    ):
        if time.monotonic() > deadline:
            raise SystemExit("tasks still running after 300 s")
        time.sleep(0.5)
    time.sleep(2)


def idle_cpu(pid: int, seconds: float = 20.0) -> float:
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def insert_waiting(database_url: str, worker: dict[str, Any], n: int) -> None:
    """`n` one-shot schedules of `worker` (as the API answered it) a year ahead, written straight
    into the database (the API would take minutes)."""
    from sqlalchemy import create_engine, insert

    from kennel.core.ids import new_id
    from kennel.models import schedules

    url = database_url.replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(url)
    when = datetime.now(UTC) + timedelta(days=365)
    rows = [
        {
            "id": new_id("sch"),
            "worker_id": worker["id"],
            "organization_id": worker["organizationId"],
            "created_by_user_id": worker["userId"],
            "kind": "scheduled",
            "input": "Next year",
            "budget": "standard",
            "anchor": when,
            "next_run_at": when + timedelta(seconds=i),
            "paused": False,
            "created_at": datetime.now(UTC),
        }
        for i in range(n)
    ]
    with engine.begin() as conn:
        for i in range(0, n, 5000):
            conn.execute(insert(schedules), rows[i : i + 5000])
    engine.dispose()


def report(label: str, values: list[float], aim: float | None) -> None:
    ms = sorted(v * 1000 for v in values)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    verdict = (
        "" if aim is None else f"   (aim p99 <= {aim:g} ms: {'PASS' if p99 <= aim else 'BELOW'})"
    )
    print(
        f"  {label:>5} due at once: p50 {statistics.median(ms):7.1f} ms  p99 {p99:7.1f} ms"
        f"  max {ms[-1]:7.1f} ms{verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", metavar="URL", help="a scratch database on this server")
    parser.add_argument("--waiting", type=int, default=100_000, help="schedules left waiting")
    opts = parser.parse_args()
    with served("schedules", opts.postgres) as server:
        with httpx.Client(
            base_url=server.base, headers={"Authorization": f"Bearer {server.key}"}, timeout=60
        ) as http:
            print("lateness (task createdAt - due time):")
            for count, aim in ((1, None), (100, 250.0), (1000, 1000.0)):
                report(str(count), lateness(http, count), aim if not opts.postgres else None)
            settle(http)
            quiet = idle_cpu(server.process.pid)
            worker = http.post("/api/workers", json={"title": "Waiting"}).json()
        insert_waiting(server.database_url, worker, opts.waiting)
        busy = idle_cpu(server.process.pid)
        verdict = "PASS" if busy < 0.02 else "BELOW"
        print(
            f"idle server CPU over 20 s: {quiet:.2%} of a core with no schedules waiting, "
            f"{busy:.2%} with {opts.waiting:,} waiting   (aim < 2 %: {verdict})"
        )


if __name__ == "__main__":
    main()
