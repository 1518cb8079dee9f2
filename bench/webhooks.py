"""How soon a webhook delivery follows the end of a turn, and whether a hanging endpoint slows
anyone else's.

Hand-run, not a test: `.venv/bin/python bench/webhooks.py [--duration 10] [--postgres URL]`.

The real `kennel serve` runs with `KENNEL_ALLOW_PRIVATE_WEBHOOKS` on; a receiver on 127.0.0.1
answers at once. Tasks are started at a fixed rate (`POST /api/tasks` returning at once) on a
worker whose webhook points there; a delivery's latency is the receiver's clock when it arrived
minus the turn's `completedAt` in the event (one machine, one clock; ms resolution).

1. 10 and 200 turn completions per second offered (the rate of turns started is printed too:
   turns themselves cost CPU, and what the server refuses with 429 and Retry-After past its
   admission bound is counted). Aim on SQLite: p99 <= 100 ms at 10 per second.
2. A healthy worker at 5 per second beside a second worker at 5 per second, first with a
   healthy endpoint too, then with one that hangs for the whole
   `KENNEL_WEBHOOK_TIMEOUT_SECONDS` (5 s here) on every attempt: the same load both times.
   Aim: the hang changes the healthy worker's p99 by less than 10 %.

A warm-up of a few seconds comes first (first-use costs of a fresh process are not the figure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from _machine import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.factories.receiver import Answer, Receiver  # noqa: E402

PYTHON = ROOT / ".venv" / "bin" / "python"


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
        "KENNEL_ALLOW_PRIVATE_WEBHOOKS": "true",
        "KENNEL_WEBHOOK_TIMEOUT_SECONDS": "5",
        "KENNEL_WEBHOOK_RETRY_SCHEDULE": "0",  # one attempt: the hang is the whole story
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


@dataclass
class Driven:
    offered: float  # tasks per second offered to each worker
    accepted: dict[str, int]  # tasks started on each worker
    refused: int  # 429 with Retry-After: the server's admission control (issue 27)
    seconds: float

    def reached(self, worker: str) -> float:
        return self.accepted[worker] / self.seconds


async def drive(
    client: httpx.AsyncClient, workers: list[str], rate: float, duration: float
) -> Driven:
    """Offer tasks to each worker at `rate` per second for `duration`."""
    sent = 0
    began = time.monotonic()
    pending: set[asyncio.Task[tuple[str, httpx.Response]]] = set()

    async def post(worker: str, body: dict[str, str]) -> tuple[str, httpx.Response]:
        return worker, await client.post("/api/tasks", json=body)

    while (elapsed := time.monotonic() - began) < duration:
        due = int(elapsed * rate) + 1
        while sent < due:
            for worker in workers:
                body = {"input": f"Ping {sent}", "workerId": worker}
                pending.add(asyncio.create_task(post(worker, body)))
            sent += 1
        await asyncio.sleep(0.002)
    answers = await asyncio.gather(*pending)
    seconds = time.monotonic() - began
    refused = [a for _, a in answers if a.status_code == 429 and "retry-after" in a.headers]
    wrong = [a.text for _, a in answers if a.status_code not in (200, 429)]
    assert not wrong, wrong[:3]
    accepted = {w: sum(1 for x, a in answers if x == w and a.status_code == 200) for w in workers}
    return Driven(sent / seconds, accepted, len(refused), seconds)


def latencies(receiver: Receiver, path: str, expected: int) -> list[float]:
    found = receiver.wait_for(expected, 120, path)
    out = []
    for delivery in found:
        completed = json.loads(delivery.body)["turn"]["completedAt"]
        ended = datetime.fromisoformat(completed.replace("Z", "+00:00")).timestamp()
        out.append(delivery.at - ended)
    return out


def summary(values: list[float]) -> tuple[float, float]:
    ms = sorted(v * 1000 for v in values)
    if os.environ.get("BENCH_DEBUG"):
        print(
            "   slowest:",
            [round(x) for x in ms[-8:]],
            "over",
            len(ms),
            "in order:",
            [round(v * 1000) for v in values[:12]],
        )
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]


async def settle(client: httpx.AsyncClient) -> None:
    """Wait until no turn is queued or running: a phase's backlog must not slow the next."""
    while True:
        counts = [
            (await client.get("/api/tasks", params={"status": s})).json()["totalCount"]
            for s in ("pending", "running")
        ]
        if not any(counts):
            await asyncio.sleep(1)
            return
        await asyncio.sleep(0.5)


async def run(base: str, key: str, receiver: Receiver, duration: float) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits) as c:

        async def worker_to(path: str) -> str:
            worker = (await c.post("/api/workers", json={"title": path})).json()["id"]
            r = await c.put(f"/api/workers/{worker}/webhook", json={"url": receiver.url(path)})
            assert r.status_code == 200, r.text
            return worker

        warm = await worker_to("/warm-up")
        await drive(c, [warm], 10, 3)
        receiver.wait_for(29, 60, "/warm-up")
        print("delivery latency, turn completedAt -> receiver:")
        for rate, aim in ((10, 100.0), (200, None)):
            path = f"/rate-{rate}"
            worker = await worker_to(path)
            await settle(c)
            driven = await drive(c, [worker], rate, duration)
            reached = driven.reached(worker)
            p50, p99 = summary(latencies(receiver, path, driven.accepted[worker]))
            verdict = (
                ""
                if aim is None
                else f" (aim p99 <= {aim:g} ms: {'PASS' if p99 <= aim else 'BELOW'})"
            )
            refused = f", {driven.refused} refused (429)" if driven.refused else ""
            print(
                f"  {rate:>3}/s offered, {reached:6.1f}/s started{refused}: p50 {p50:6.1f} ms, "
                f"p99 {p99:6.1f} ms{verdict}"
            )
        receiver.script("/hang", [Answer(200, delay=8)])
        results = {}
        for other in ("/other-healthy", "/hang"):
            healthy = await worker_to(f"/healthy-beside{other}")
            await settle(c)
            driven = await drive(c, [healthy, await worker_to(other)], 5, duration)
            found = latencies(receiver, f"/healthy-beside{other}", driven.accepted[healthy])
            results[other] = summary(found)
        (p50_a, p99_a), (p50_b, p99_b) = results["/other-healthy"], results["/hang"]
        change = (p99_b - p99_a) / p99_a if p99_a else 0.0
        print(
            f"  healthy at 5/s beside another worker at 5/s: p99 {p99_a:.1f} ms (p50 {p50_a:.1f})"
            f" when its endpoint is healthy, {p99_b:.1f} ms (p50 {p50_b:.1f}) when it hangs 5 s:"
            f" {change:+.0%} (aim < +10 %: {'PASS' if change < 0.10 else 'BELOW'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds each rate runs")
    parser.add_argument("--postgres", metavar="URL", help="a scratch database on this server")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kennel-bench-webhooks-") as folder, Receiver() as rx:
        tmp = Path(folder)
        name = f"kennel_bench_webhooks_{os.getpid()}"
        if opts.postgres:
            from _machine import scratch_postgres
            from sqlalchemy.engine import make_url

            asyncio.run(scratch_postgres(opts.postgres, name, create=True))
            url = make_url(opts.postgres).set(database=name).render_as_string(hide_password=False)
        else:
            url = f"sqlite:///{tmp / 'kennel.sqlite3'}"
        process, base, key = start(tmp, url)
        try:
            print(f"Kennel webhooks bench: {'PostgreSQL' if opts.postgres else 'SQLite'}")
            asyncio.run(run(base, key, rx, opts.duration))
        finally:
            process.terminate()
            process.wait(timeout=30)
            if opts.postgres:
                asyncio.run(scratch_postgres(opts.postgres, name, create=False))


if __name__ == "__main__":
    main()
