"""What an idle server costs, and how soon it starts a turn after idling.

Hand-run, not a test: `.venv/bin/python bench/idle.py [--postgres URL] [--waiting 100000]`.

It starts the real `kennel serve` (offline model) on a fresh database and then:

1. Idle CPU: the server's user + system CPU over 30 s with no schedules, then with `--waiting`
   one-shot schedules a year ahead (written straight into the database), as a fraction of one
   core. Aim: under 2 % in both.
2. Start latency after idling: ten times, 10 s of nothing, then one `POST /api/tasks` that
   does not wait; its turn's `startedAt` minus the task's `createdAt` (both the server's clock)
   is how long the turn sat in the queue. Aim: p50 <= 100 ms, max <= 250 ms.

Prints each figure with PASS or BELOW.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import httpx

from schedules import idle_cpu, insert_waiting, instant, served

IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "30"))


def start_latency(http: httpx.Client, worker_id: str, idle: float = 10.0) -> float:
    """Seconds from a task's creation to its turn's start, after `idle` seconds of nothing."""
    time.sleep(idle)
    task_id = f"idle-{time.time_ns()}"
    answer = http.post("/api/tasks", json={"workerId": worker_id, "taskId": task_id, "input": "Hi"})
    answer.raise_for_status()
    deadline = time.monotonic() + 60
    while True:
        body = http.get(f"/api/tasks/{task_id}").json()
        turn = body["turns"][0]
        if turn["status"] != "pending":
            return (instant(turn["startedAt"]) - instant(body["task"]["createdAt"])).total_seconds()
        if time.monotonic() > deadline:
            raise SystemExit("the turn did not start within 60 s")
        time.sleep(0.02)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "BELOW"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", metavar="URL", help="a scratch database on this server")
    parser.add_argument("--waiting", type=int, default=100_000, help="schedules left waiting")
    parser.add_argument("--starts", type=int, default=10, help="idle-then-start samples")
    opts = parser.parse_args()
    with served("idle", opts.postgres) as server:
        with httpx.Client(
            base_url=server.base, headers={"Authorization": f"Bearer {server.key}"}, timeout=60
        ) as http:
            worker = http.post("/api/workers", json={"title": "Idle"}).json()
            time.sleep(5)  # start-up work (recovery, first sweeps) is not idling
            quiet = idle_cpu(server.process.pid, IDLE_SECONDS)
            print(
                f"idle CPU, no schedules:        {quiet:6.2%} of a core   "
                f"(aim < 2 %: {verdict(quiet < 0.02)})"
            )
            insert_waiting(server.database_url, worker, opts.waiting)
            time.sleep(2)
            busy = idle_cpu(server.process.pid, IDLE_SECONDS)
            print(
                f"idle CPU, {opts.waiting:>7,} waiting:     {busy:6.2%} of a core   "
                f"(aim < 2 %: {verdict(busy < 0.02)})"
            )
            waits = sorted(start_latency(http, worker["id"]) * 1000 for _ in range(opts.starts))
            p50, worst = statistics.median(waits), waits[-1]
            print(
                f"turn start after 10 s idle:    p50 {p50:5.0f} ms  max {worst:5.0f} ms   "
                f"(aim p50 <= 100 ms: {verdict(p50 <= 100)}, "
                f"max <= 250 ms: {verdict(worst <= 250)})"
            )


if __name__ == "__main__":
    main()
