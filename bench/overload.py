"""Goodput under overload: does a server offered more than it can do keep doing what it can?

Hand-run, not a test: `.venv/bin/python bench/overload.py [--postgres URL] [--factor 4]
[--seconds 30]`.

It starts the real `kennel serve` (offline model, `KENNEL_TASK_WAIT_SECONDS=0`: a POST
answers at once) on a fresh database and then:

1. Sustainable rate: 8 clients in a closed loop (post a task with `stream: true` and read the
   answer to its end, then the next) for 15 s; completed tasks per second.
2. Overload: an open loop offers `--factor` x that rate for `--seconds` (each POST on its own,
   whatever the server's answers), while a reader in a process of its own gets
   `GET /api/workers/{id}` ten times a second. Each second: tasks completed (the server's
   count), the server's RSS.
3. Drain: after the offered window, until every accepted task has ended.

Figures (PASS or BELOW against issue 27's aims): goodput during overload / sustainable
(>= 0.9), the reader's p99 (< 100 ms), drain rate / sustainable (>= 0.9), peak RSS, and how
the POSTs were answered (200 accepted, 429 refused with Retry-After, other).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from collections import Counter
from pathlib import Path

import httpx

from schedules import served

WORKER_READS_PER_SECOND = 10


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


async def completed(http: httpx.AsyncClient, worker: str) -> int:
    r = await http.get("/api/tasks", params={"workerId": worker, "status": "completed"})
    return int(r.json()["totalCount"])


async def ended(http: httpx.AsyncClient, worker: str) -> int:
    total = 0
    for status in ("completed", "error", "aborted"):
        r = await http.get("/api/tasks", params={"workerId": worker, "status": status})
        total += int(r.json()["totalCount"])
    return total


def reads(url: str, authorization: str, until: float) -> list[float]:
    """`GET url` ten times a second until `time.monotonic()` (one clock for every process here)
    is `until`, with a client of its own: each one's ms."""
    took: list[float] = []
    with httpx.Client(headers={"Authorization": authorization}, timeout=120) as client:
        while time.monotonic() < until:
            t0 = time.monotonic()
            client.get(url).raise_for_status()
            took.append((time.monotonic() - t0) * 1000)
            time.sleep(max(0.0, 1 / WORKER_READS_PER_SECOND - (time.monotonic() - t0)))
    return took


async def sustainable(http: httpx.AsyncClient, worker: str, seconds: float = 15.0) -> float:
    """Tasks per second that 8 clients get, each waiting for its answer (`stream: true`: the
    response ends with the turn) before posting the next."""
    stop = time.monotonic() + seconds
    done = 0

    async def client() -> None:
        nonlocal done
        while time.monotonic() < stop:
            body = {"workerId": worker, "input": "Say hello.", "stream": True}
            async with http.stream("POST", "/api/tasks", json=body) as r:
                r.raise_for_status()
                async for _ in r.aiter_bytes():
                    pass
            if time.monotonic() < stop:
                done += 1

    await asyncio.gather(*(client() for _ in range(8)))
    return done / seconds


async def overload(
    http: httpx.AsyncClient, pid: int, worker: str, rate: float, seconds: float
) -> dict[str, object]:
    answers: Counter[str] = Counter()
    post_ms: list[float] = []
    read_ms: list[float] = []
    samples: list[tuple[float, int, float]] = []  # (t, completed, rss)
    began = time.monotonic()
    offered_until = began + seconds
    base = await completed(http, worker)

    async def post(n: int) -> None:
        t0 = time.monotonic()
        try:
            r = await http.post(
                "/api/tasks",
                json={"workerId": worker, "taskId": f"o-{n}-{time.time_ns()}", "input": "Hi."},
            )
            code = str(r.status_code)
            if r.status_code == 429 and "retry-after" not in r.headers:
                code = "429 without Retry-After"
        except httpx.HTTPError as exc:
            code = type(exc).__name__
        answers[code] += 1
        post_ms.append((time.monotonic() - t0) * 1000)

    async def offer() -> None:
        posts: list[asyncio.Task[None]] = []
        n = 0
        while (now := time.monotonic()) < offered_until:
            due = began + n / rate
            if due > now:
                await asyncio.sleep(due - now)
            posts.append(asyncio.create_task(post(n)))
            n += 1
        await asyncio.gather(*posts)

    async def read() -> None:
        # In a process of its own: on the offering client's loop, each read would wait behind
        # the 4x posts' callbacks, and the figure would be the client's lag, not the server's.
        url = str(http.base_url.join(f"/api/workers/{worker}"))
        token = http.headers["Authorization"]
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            read_ms.extend(await asyncio.to_thread(pool.apply, reads, (url, token, offered_until)))

    async def sample() -> None:
        while time.monotonic() < offered_until:
            await asyncio.sleep(1.0)
            samples.append((time.monotonic() - began, await completed(http, worker), rss_mib(pid)))

    await asyncio.gather(offer(), read(), sample())
    window_end = time.monotonic()
    done_in_window = await completed(http, worker) - base
    accepted = answers["200"]
    # Drain: until every accepted task ended.
    peak_rss = max((s[2] for s in samples), default=rss_mib(pid))
    at_end = await ended(http, worker)
    start_count = at_end
    drain_began = time.monotonic()
    target = base + accepted
    while at_end < target:
        await asyncio.sleep(1.0)
        at_end = await ended(http, worker)
        peak_rss = max(peak_rss, rss_mib(pid))
        if time.monotonic() - drain_began > 600:
            break
    drain_seconds = time.monotonic() - drain_began
    return {
        "answers": answers,
        "post_p50": statistics.median(post_ms) if post_ms else 0.0,
        "post_p99": p99(post_ms),
        "read_p99": p99(read_ms),
        "read_p50": statistics.median(read_ms) if read_ms else 0.0,
        "goodput": done_in_window / (window_end - began),
        "drained": at_end - start_count,
        "drain_seconds": drain_seconds,
        "peak_rss": peak_rss,
        "per_second": [
            samples[i][1] - (samples[i - 1][1] if i else base) for i in range(len(samples))
        ],
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "BELOW"


async def run(base: str, key: str, pid: int, factor: float, seconds: float) -> None:
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120, limits=limits
    ) as http:
        worker = (await http.post("/api/workers", json={"title": "Overloaded"})).json()["id"]
        rss_before = rss_mib(pid)
        rate = await sustainable(http, worker)
        print(f"sustainable (8 closed-loop clients, 15 s): {rate:5.1f} tasks/s")
        offered = rate * factor
        print(f"offering {offered:.1f} tasks/s ({factor:g}x) for {seconds:g} s ...")
        got = await overload(http, pid, worker, offered, seconds)
    answers = ", ".join(f"{code}: {n}" for code, n in sorted(got["answers"].items()))  # type: ignore[attr-defined]
    goodput = float(got["goodput"])  # type: ignore[arg-type]
    drain_rate = float(got["drained"]) / max(float(got["drain_seconds"]), 1e-9)  # type: ignore[arg-type]
    read_p99 = float(got["read_p99"])  # type: ignore[arg-type]
    print(
        f"  POST answers: {answers}; POST p50 {got['post_p50']:.0f} ms, "
        f"p99 {got['post_p99']:.0f} ms"
    )
    print(f"  completed per second during it: {got['per_second']}")
    print(
        f"  goodput {goodput:5.1f} tasks/s = {goodput / rate:.2f} of sustainable   "
        f"(aim >= 0.9: {verdict(goodput >= 0.9 * rate)})"
    )
    print(
        f"  GET /api/workers/{{id}}: p50 {got['read_p50']:.0f} ms, p99 {read_p99:.0f} ms   "
        f"(aim < 100 ms: {verdict(read_p99 < 100)})"
    )
    drained = int(got["drained"])  # type: ignore[call-overload]
    print(
        f"  drain: {drained} tasks in {got['drain_seconds']:.1f} s = {drain_rate:.1f}/s "
        f"= {drain_rate / rate:.2f} of sustainable   "
        f"(aim >= 0.9: {verdict(drained < rate or drain_rate >= 0.9 * rate)})"
    )
    print(f"  RSS: {rss_before:.0f} MiB before, peak {got['peak_rss']:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", metavar="URL", help="a scratch database on this server")
    parser.add_argument("--factor", type=float, default=4.0, help="offered / sustainable")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long it is offered")
    opts = parser.parse_args()
    with served("overload", opts.postgres) as server:
        asyncio.run(run(server.base, server.key, server.process.pid, opts.factor, opts.seconds))


if __name__ == "__main__":
    main()
