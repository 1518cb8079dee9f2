"""Tasks per second through HTTP against bare DBOS workflows; turn start latency; memory per turn.

Hand-run, not a test: `.venv/bin/python bench/tasks.py [--duration 10] [--warmup 3]
[--concurrency 1,8,32] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
[--skip-memory] [--memory-turns 200] [--latency-tasks 20] [--bare-journal wal|default]`.

Everything talks to 127.0.0.1 only and every phase is bounded in time (about 3 minutes with the
defaults):

1. Throughput through HTTP. The real `kennel serve` runs on a free port with a fresh database
   (a SQLite file in a temp folder, or a scratch PostgreSQL database created and dropped here)
   and `KENNEL_TURN_CONCURRENCY` = the largest client count. N clients (each with its own
   keep-alive connection, starts staggered) loop `POST /api/tasks` (fixed short input, one
   pre-created worker, no stream: the call waits for the answer). A call counts when it ends
   inside the measured window, answered 200 with `status == "completed"`; else it is an error.
2. Bare DBOS, in its own process (the server's DBOS is in another): a fresh SQLite file (in WAL
   mode like Kennel's file, unless `--bare-journal default`, and with the engine settings
   Kennel gives DBOS: no ping, `synchronous=NORMAL`) or scratch database, a queue
   registered like Kennel's (`worker_concurrency` = the turn concurrency, `polling_interval_sec`
   = 50 ms), a workflow of two trivial steps; N clients loop
   `DBOS.enqueue_workflow_async` + `handle.get_result(polling_interval_sec=` the same polling`)`.
   Levels alternate (HTTP 1, bare 1, HTTP 8, ...) so a shared machine's drift hits both alike.
   The figure is HTTP tasks/s / bare workflows/s at each level (aim >= 0.5 on SQLite).
3. Start latency on an idle server: sequential tasks with random pauses between them, measured
   (a) as the turn's `startedAt` (stamped by the turn's first DBOS step as it marks the turn
   running; server wall clock, milliseconds) minus the client's wall clock just before sending
   the POST, same machine: this is the figure held to the aim (<= 100 ms); (b) with `stream:
   true`, the time to the first SSE event (the response opening) and to the first `start-step`
   (which also includes the offline model's answer: an upper bound).
4. Memory per idle waiting turn: a second server whose offline model sleeps a minute per answer
   and whose `KENNEL_TASK_WAIT_SECONDS=0` makes POST return at once (`running: true`). Warm-up
   turns start first (one-time costs stay out of the figure), then N more; once
   `GET /api/tasks?status=running` counts them all, the server's VmRSS growth / N is the cost of
   one waiting turn (aim < 1 MiB). That server is then killed, not waited for.

5. Under real model latency: a third server with the default `KENNEL_TURN_CONCURRENCY`, whose
   offline model waits 2 s per request (as a provider would), gets `--latency-turns` (500) tasks
   at once (`KENNEL_TASK_WAIT_SECONDS=0`: each POST returns at once). The offline model also
   waits that long between the chunks of an answer (three words each), so the input here is
   answered in one chunk: a request takes 2 s, not 2 s a chunk. The figure is the wall time
   until all have completed against the ideal (2 s a wave of the default concurrency's turns),
   their rate against the 32-client rate of phase 1 (aim: waiting on the model costs no
   throughput), and the server's peak RSS per turn (aim < 1 MiB) and CPU.

Server and clients share the machine; the table shows the CPU each process used (fraction of
one core) and its CPU per operation, which stays meaningful when other work shares the CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from _machine import cpu_seconds, free_port, scratch_postgres

PYTHON = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
RATIO_AIM = 0.5  # HTTP tasks/s divided by bare two-step workflows/s, on SQLite
START_AIM_MS = 100.0  # a queued turn starts within this on an idle server
MEMORY_AIM_KIB = 1024.0  # RSS per idle waiting turn
# Bare DBOS polls its queue as often as a latency-minded DBOS app would (Kennel did until
# its runners were woken by their own enqueues: `core.wakeup`; the server keeps its default).
QUEUE_POLLING_SECONDS = 0.05
TASK_INPUT = "Say hello."
# Answered "Done: Hi <n>." in one chunk: the offline model pauses before an answer and between
# its chunks of three words (phase 5).
LATENCY_INPUT = "Hi {}."
MODEL_DELAY_SECONDS = 2.0
CALL_TIMEOUT = 60.0


# --- measurement -------------------------------------------------------------------------------


@dataclass
class Result:
    concurrency: int
    duration: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    server_cpu: float = 0.0  # fraction of one core over the window (the measured process)
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.duration

    @property
    def cpu_ms(self) -> float:
        """CPU of the measured process per operation: steadier than the rate on a busy machine."""
        return self.server_cpu * self.duration * 1000 / max(1, len(self.latencies))

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    def to_json(self) -> dict:
        return self.__dict__

    @classmethod
    def from_json(cls, data: dict) -> Result:
        return cls(**data)


async def _load(
    call: Callable[[int], Awaitable[str | None]],
    concurrency: int,
    warmup: float,
    duration: float,
    cpu_pid: int,
) -> Result:
    """`concurrency` loops of `call` (None: success, else an error text); completions that end
    inside the window count. After the window, calls in flight finish before this returns."""
    result = Result(concurrency, duration)
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + duration

    async def client(i: int) -> None:
        # Staggered starts: clients that all start together stay in lock-step waves.
        await asyncio.sleep(min(warmup / 2, 0.5) * i / concurrency)
        while (began := time.perf_counter()) < stop_at:
            try:
                error = await asyncio.wait_for(call(i), CALL_TIMEOUT)
            except Exception as exc:  # every failure is one error of the bench
                error = repr(exc)
            ended = time.perf_counter()
            if measure_from <= ended <= stop_at:
                if error is None:
                    result.latencies.append(ended - began)
                else:
                    result.errors += 1
                    result.first_error = result.first_error or error[:300]

    async def cpu() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        before, client_before = cpu_seconds(cpu_pid), time.process_time()
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        result.server_cpu = (cpu_seconds(cpu_pid) - before) / duration
        result.client_cpu = (time.process_time() - client_before) / duration

    await asyncio.gather(cpu(), *(client(i) for i in range(concurrency)))
    return result


# --- HTTP client -------------------------------------------------------------------------------


class _Connection:
    """A minimal keep-alive HTTP/1.1 client (cheap, so the shared CPU goes to the server)."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.head = f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _send(self, method: str, path: str, body: bytes | None) -> None:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        extra = f"Content-Length: {len(body)}\r\n" if body is not None else ""
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.head}{extra}\r\n"
        self.writer.write(head.encode() + (body or b""))

    async def _head(self) -> tuple[int, dict[str, str]]:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def request(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        try:
            reused = self.writer is not None
            await self._send(method, path, data)
            try:
                status, headers = await self._head()
            except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
                if not reused or getattr(exc, "partial", b""):
                    raise
                # The server closed the idle keep-alive connection: the request never ran.
                await self.close()
                await self._send(method, path, data)
                status, headers = await self._head()
            assert self.reader is not None
            if "content-length" not in headers:
                raise RuntimeError(f"response without Content-Length: {headers}")
            return status, await self.reader.readexactly(int(headers["content-length"]))
        except BaseException:
            await self.close()
            raise

    async def sse(self, path: str, body: object) -> list[tuple[float, dict]]:
        """POST and read a chunked SSE answer to its end: (perf_counter, event) of each event."""
        await self._send("POST", path, json.dumps(body).encode())
        status, headers = await self._head()
        assert self.reader is not None
        if status != 200 or headers.get("transfer-encoding") != "chunked":
            raise RuntimeError(f"SSE answer {status} {headers}")
        events: list[tuple[float, dict]] = []
        buffer = b""
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return events
            buffer += chunk[:-2]
            now = time.perf_counter()
            while b"\n\n" in buffer:
                message, buffer = buffer.split(b"\n\n", 1)
                for line in message.split(b"\n"):
                    if line.startswith(b"data: ") and line[6:] != b"[DONE]":
                        events.append((now, json.loads(line[6:])))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# --- server ------------------------------------------------------------------------------------


class Databases:
    """Fresh databases: SQLite files in the temp folder, or scratch PostgreSQL databases."""

    def __init__(self, tmp: Path, postgres: str | None) -> None:
        self.tmp, self.postgres, self.created = tmp, postgres, []

    def new(self, label: str) -> str:
        if not self.postgres:
            return f"sqlite:///{self.tmp / label}.sqlite3"
        from sqlalchemy.engine import make_url

        name = f"kennel_bench_{label}_{secrets.token_hex(4)}"
        asyncio.run(scratch_postgres(self.postgres, name, create=True))
        self.created.append(name)
        return make_url(self.postgres).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        for name in self.created:
            asyncio.run(scratch_postgres(self.postgres, name, create=False))  # type: ignore[arg-type]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    key: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _start_server(tmp: Path, label: str, database_url: str, env: dict[str, str]) -> Server:
    from kennel.auth.keys import generate_key

    port, key = free_port(), generate_key()
    log = tmp / f"{label}.log"
    full_env = {
        **os.environ,
        "KENNEL_DATABASE_URL": database_url,
        "KENNEL_DATA_DIR": str(tmp / f"{label}-data"),
        "KENNEL_BOOTSTRAP_API_KEY": key,
        "KENNEL_LOG_LEVEL": "WARNING",
        "KENNEL_SMTP_PORT": "0",
        "KENNEL_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **env,
    }
    process = subprocess.Popen(
        [str(PYTHON), "-m", "kennel", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=full_env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server(process, port, key, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise SystemExit(f"server did not become healthy:\n{log.read_text()[-3000:]}")


async def _worker(server: Server) -> str:
    conn = _Connection(server.port, server.key)
    try:
        return await _create_worker(conn)
    finally:
        await conn.close()


async def _create_worker(conn: _Connection) -> str:
    status, body = await conn.request("POST", "/api/workers", {"title": "Bench Tasks"})
    if status != 201:
        raise SystemExit(f"creating the worker: {status} {body[:300]!r}")
    return json.loads(body)["id"]


# --- 1. throughput through HTTP ----------------------------------------------------------------


async def _http_level(server: Server, worker_id: str, concurrency: int, opts) -> Result:
    payload = {"input": TASK_INPUT, "workerId": worker_id}
    conns = [_Connection(server.port, server.key) for _ in range(concurrency)]

    async def call(i: int) -> str | None:
        status, body = await conns[i].request("POST", "/api/tasks", payload)
        if status != 200:
            return f"HTTP {status}: {body[:200]!r}"
        state = json.loads(body)
        if state.get("status") != "completed":
            return f"status {state.get('status')!r}, error {state.get('error')!r}"
        return None

    result = await _load(call, concurrency, opts.warmup, opts.duration, server.process.pid)
    for conn in conns:
        await conn.close()
    await asyncio.sleep(0.5)  # let the queue settle between levels
    return result


# --- 2. bare DBOS, in its own process ----------------------------------------------------------


def _bare_child(spec: dict) -> None:
    """Runs in a subprocess: DBOS alone, configured like Kennel's, two-step workflows.

    Reads one JSON line per level on stdin ({"concurrency", "warmup", "duration"}) and answers
    `RESULT <json>`, so the parent can interleave the levels with the HTTP ones.
    """
    from dbos import DBOS, DBOSConfig

    @DBOS.step()
    async def bench_step_one(value: str) -> str:
        return value

    @DBOS.step()
    async def bench_step_two(value: str) -> str:
        return value

    @DBOS.workflow()
    async def bench_two_steps(value: str) -> str:
        return await bench_step_two(await bench_step_one(value))

    async def main() -> None:
        config: DBOSConfig = {
            "name": "kennel_bench_bare",
            "system_database_url": spec["database_url"],
            "application_version": "bench",
            "executor_id": "local",
            "log_level": "WARNING",
            "notification_listener_polling_interval_sec": spec["polling"],
        }
        if spec["database_url"].startswith("sqlite:///"):
            from kennel.core.durable import sqlite_engine_kwargs

            # The engine settings Kennel gives DBOS on SQLite (no ping, synchronous=NORMAL).
            path = spec["database_url"].removeprefix("sqlite:///")
            config["db_engine_kwargs"] = sqlite_engine_kwargs(path)
        DBOS(config=config)
        DBOS.launch()
        await DBOS.register_queue_async(
            "bench_queue",
            worker_concurrency=spec["worker_concurrency"],
            polling_interval_sec=spec["polling"],
        )

        async def call(i: int) -> str | None:
            handle = await DBOS.enqueue_workflow_async("bench_queue", bench_two_steps, "x")
            value = await handle.get_result(polling_interval_sec=spec["polling"])
            return None if value == "x" else f"result {value!r}"

        print("READY", flush=True)
        while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
            level = json.loads(line)
            result = await _load(
                call, level["concurrency"], level["warmup"], level["duration"], os.getpid()
            )
            print("RESULT " + json.dumps(result.to_json()), flush=True)
            await asyncio.sleep(0.5)  # let the queue settle between levels
        DBOS.destroy(workflow_completion_timeout_sec=0)

    _run(main())


class BareDBOS:
    """The bare-DBOS subprocess, driven level by level."""

    def __init__(self, database_url: str, tmp: Path, worker_concurrency: int, *, wal: bool) -> None:
        if wal and database_url.startswith("sqlite:///"):
            # Kennel's SQLite file is in WAL mode (its engines set it; the mode is stored in the
            # file, so DBOS's connections to it use WAL too); DBOS alone would keep the rollback
            # journal, whose commits cost several fsyncs. Same file mode on both sides.
            import sqlite3

            with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
        spec = {
            "database_url": database_url,
            "polling": QUEUE_POLLING_SECONDS,
            "worker_concurrency": worker_concurrency,
        }
        self.stderr = (tmp / "bare.log").open("w+")
        self.process = subprocess.Popen(
            [str(PYTHON), str(Path(__file__).resolve()), "--bare-child", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            cwd=tmp,
        )
        self._expect("READY", 60)

    def _expect(self, prefix: str, timeout: float) -> str:
        import selectors

        assert self.process.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    line = self.process.stdout.readline()
                    if not line:
                        break
                    if line.startswith(prefix):
                        return line[len(prefix) :].strip()
        self.stop()
        self.stderr.seek(0)
        raise SystemExit(f"bare DBOS process failed:\n{self.stderr.read()[-3000:]}")

    def measure(self, concurrency: int, warmup: float, duration: float) -> Result:
        assert self.process.stdin is not None
        level = {"concurrency": concurrency, "warmup": warmup, "duration": duration}
        self.process.stdin.write(json.dumps(level) + "\n")
        self.process.stdin.flush()
        return Result.from_json(json.loads(self._expect("RESULT", warmup + duration + 90)))

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write("\n")
                self.process.stdin.flush()
                self.process.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=10)


# --- 3. start latency --------------------------------------------------------------------------


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def _start_latency(
    server: Server, count: int
) -> tuple[list[float], list[float], list[float]]:
    """(startedAt - sent) and, streaming, (first SSE event - sent), (first start-step - sent)."""
    conn = _Connection(server.port, server.key)
    worker_id = await _create_worker(conn)
    started, first_event, first_step = [], [], []
    for i in range(count):
        await asyncio.sleep(random.uniform(0.15, 0.35))  # idle; a random phase of the poller
        sent = time.time()
        status, body = await conn.request(
            "POST", "/api/tasks", {"input": f"{TASK_INPUT} #{i}", "workerId": worker_id}
        )
        if status != 200:
            raise SystemExit(f"start latency: POST answered {status} {body[:300]!r}")
        task_id = json.loads(body)["metadata"]["taskId"]
        status, body = await conn.request("GET", f"/api/tasks/{task_id}")
        turn = json.loads(body)["turns"][0]
        started.append(_epoch(turn["startedAt"]) - sent)

        await asyncio.sleep(random.uniform(0.15, 0.35))
        sent_perf = time.perf_counter()
        events = await conn.sse(
            "/api/tasks", {"input": f"{TASK_INPUT} s{i}", "workerId": worker_id, "stream": True}
        )
        if events:
            first_event.append(events[0][0] - sent_perf)
        steps = [t for t, e in events if e.get("type") == "start-step"]
        if steps:
            first_step.append(steps[0] - sent_perf)
    await conn.close()
    return started, first_event, first_step


# --- 4. memory per idle waiting turn -----------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _running_count(conn: _Connection) -> int:
    status, body = await conn.request("GET", "/api/tasks?status=running")
    if status != 200:
        raise RuntimeError(f"listing running tasks: {status} {body[:200]!r}")
    return json.loads(body)["totalCount"]


async def _start_waiting_turns(server: Server, worker_id: str, count: int, target: int) -> float:
    """POST `count` tasks (returning at once) and wait until `target` tasks run; seconds taken."""
    began = time.perf_counter()
    conns = [_Connection(server.port, server.key) for _ in range(16)]
    todo = list(range(count))

    async def poster(conn: _Connection) -> None:
        while todo:
            n = todo.pop()
            status, body = await conn.request(
                "POST", "/api/tasks", {"input": f"Wait {n}", "workerId": worker_id}
            )
            state = json.loads(body)
            if status != 200 or not state.get("running"):
                raise SystemExit(f"memory: POST answered {status} {body[:300]!r}")

    await asyncio.gather(*(poster(c) for c in conns))
    probe = conns[0]
    deadline = time.perf_counter() + 25  # turns sleep 60 s: all must be running well before
    while (running := await _running_count(probe)) < target:
        if time.perf_counter() > deadline:
            raise SystemExit(f"memory: only {running} of {target} turns running after 25 s")
        await asyncio.sleep(0.2)
    for conn in conns:
        await conn.close()
    return time.perf_counter() - began


async def _completed_count(conn: _Connection) -> int:
    status, body = await conn.request("GET", "/api/tasks?status=completed")
    if status != 200:
        raise RuntimeError(f"listing completed tasks: {status} {body[:200]!r}")
    return json.loads(body)["totalCount"]


async def _model_latency(server: Server, turns: int) -> tuple[float, int, int, float]:
    """Start `turns` tasks at once on a model that takes 2 s; wall seconds until all completed,
    RSS before and at its peak (KiB), and the server's CPU seconds meanwhile."""
    from kennel.agents.offline_model import answer_text, text_chunks

    # The offline model's delay comes again before every further chunk of an answer.
    if len(text_chunks(answer_text(LATENCY_INPUT.format(turns), []))) != 1:
        raise SystemExit(f"model latency: {LATENCY_INPUT!r} is answered in several chunks")
    conn = _Connection(server.port, server.key)
    worker_id = await _create_worker(conn)
    before = _rss_kib(server.process.pid)
    cpu_before = cpu_seconds(server.process.pid)
    peak = before
    began = time.perf_counter()
    conns = [_Connection(server.port, server.key) for _ in range(32)]
    todo = list(range(turns))

    async def poster(c: _Connection) -> None:
        while todo:
            n = todo.pop()
            status, body = await c.request(
                "POST", "/api/tasks", {"input": LATENCY_INPUT.format(n), "workerId": worker_id}
            )
            if status != 200:
                raise SystemExit(f"model latency: POST answered {status} {body[:300]!r}")

    await asyncio.gather(*(poster(c) for c in conns))
    deadline = began + 600
    while (done := await _completed_count(conn)) < turns:
        peak = max(peak, _rss_kib(server.process.pid))
        if time.perf_counter() > deadline:
            raise SystemExit(f"model latency: {done} of {turns} turns completed after 600 s")
        await asyncio.sleep(0.25)
    took = time.perf_counter() - began
    cpu = cpu_seconds(server.process.pid) - cpu_before
    for c in [conn, *conns]:
        await c.close()
    return took, before, peak, cpu


async def _memory(server: Server, warm: int, count: int) -> tuple[int, int, float]:
    conn = _Connection(server.port, server.key)
    worker_id = await _create_worker(conn)
    await _start_waiting_turns(server, worker_id, warm, warm)
    await asyncio.sleep(1.0)
    before = _rss_kib(server.process.pid)
    took = await _start_waiting_turns(server, worker_id, count, warm + count)
    await asyncio.sleep(1.0)
    after = _rss_kib(server.process.pid)
    await conn.close()
    return before, after, took


# --- report ------------------------------------------------------------------------------------


def _report_throughput(http: list[Result], bare: list[Result], backend: str) -> None:
    print(
        "\nHTTP: POST /api/tasks, answer awaited (server cpu = kennel serve; cpu ms = its CPU per"
        " task)\nbare: enqueue + get_result of a 2-step workflow (cpu = the whole bare process)"
    )
    print(
        f"{'clients':>7} | {'tasks/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'err':>4}{'srv cpu':>8}"
        f"{'cpu ms':>7} | {'wf/s':>7}{'p50 ms':>8}{'p99 ms':>8}{'err':>4}{'cpu':>5}{'cpu ms':>7}"
        f" | ratio"
    )
    aim_note = "" if backend == "SQLite" else ", set for SQLite"
    for h, b in zip(http, bare, strict=True):
        ratio = h.rate / b.rate if b.rate else 0.0
        verdict = "PASS" if ratio >= RATIO_AIM else "BELOW"
        print(
            f"{h.concurrency:>7} | {h.rate:>8.1f}{h.percentile(0.5):>8.1f}"
            f"{h.percentile(0.99):>8.1f}{h.errors:>4}{h.server_cpu:>8.0%}{h.cpu_ms:>7.1f} | "
            f"{b.rate:>7.1f}{b.percentile(0.5):>8.1f}{b.percentile(0.99):>8.1f}{b.errors:>4}"
            f"{b.server_cpu:>5.0%}"
            f"{b.cpu_ms:>7.1f} | {ratio:.2f} (aim >= {RATIO_AIM}{aim_note}) {verdict}"
        )
    for r, what in [(r, "HTTP") for r in http] + [(r, "bare") for r in bare]:
        if r.percentile(0.5) > r.duration * 1000 / 5:
            print(
                f"  note: {what} p50 at {r.concurrency} clients is over a fifth of the window; "
                "the rate is coarse (raise --duration)"
            )
        if r.first_error:
            print(f"  first {what} error at {r.concurrency} clients: {r.first_error}")


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    ms = [v * 1000 for v in values]
    return f"p50 {statistics.median(ms):6.1f} ms  max {max(ms):6.1f} ms  (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument(
        "--concurrency",
        default="1,8,32",
        type=lambda s: [int(x) for x in s.split(",")],
        help="comma-separated client counts",
    )
    parser.add_argument("--postgres", metavar="URL", help="use scratch databases on this server")
    parser.add_argument("--skip-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--memory-turns", type=int, default=200, help="waiting turns measured")
    parser.add_argument("--latency-tasks", type=int, default=20, help="sequential tasks timed")
    parser.add_argument(
        "--latency-turns", type=int, default=500, help="turns started at once on a 2 s model"
    )
    parser.add_argument("--skip-model-latency", action="store_true", help="skip phase 5")
    parser.add_argument(
        "--bare-journal",
        choices=["wal", "default"],
        default="wal",
        help="journal of the bare-DBOS SQLite file: WAL like Kennel's file (default), or DBOS's",
    )
    parser.add_argument("--bare-child", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.bare_child:
        _bare_child(json.loads(opts.bare_child))
        return
    if opts.duration <= 0 or opts.warmup < 0 or min(opts.concurrency) < 1:
        parser.error("need --duration > 0, --warmup >= 0 and client counts >= 1")

    backend = "PostgreSQL" if opts.postgres else "SQLite"
    turn_concurrency = max(opts.concurrency)
    memory_warm = 20
    print(
        f"Kennel tasks bench: {backend}, {os.cpu_count()} CPUs, {opts.warmup:g}s warm-up + "
        f"{opts.duration:g}s per level, clients {opts.concurrency}\n"
        f"server: KENNEL_TURN_CONCURRENCY={turn_concurrency}, KENNEL_LOG_LEVEL=WARNING, "
        "KENNEL_QUEUE_POLLING_SECONDS default (runners woken by enqueues), model offline, "
        f"input {TASK_INPUT!r}\n"
        f"bare DBOS: worker_concurrency={turn_concurrency}, polling_interval_sec="
        f"{QUEUE_POLLING_SECONDS}, get_result(polling_interval_sec={QUEUE_POLLING_SECONDS})"
        + ("" if opts.postgres else f", SQLite journal: {opts.bare_journal}")
    )
    with tempfile.TemporaryDirectory(prefix="kennel-bench-tasks-") as tmpdir:
        tmp = Path(tmpdir)
        databases = Databases(tmp, opts.postgres)
        try:
            env = {"KENNEL_TURN_CONCURRENCY": str(turn_concurrency)}
            server = _start_server(tmp, "server", databases.new("http"), env)
            bare_dbos = None
            try:
                bare_dbos = BareDBOS(
                    databases.new("bare"), tmp, turn_concurrency, wal=opts.bare_journal == "wal"
                )
                worker_id = _run(_worker(server))
                http, bare = [], []
                for concurrency in opts.concurrency:  # interleaved: the machine may be shared
                    http.append(_run(_http_level(server, worker_id, concurrency, opts)))
                    bare.append(bare_dbos.measure(concurrency, opts.warmup, opts.duration))
                bare_dbos.stop()
                latency = _run(_start_latency(server, opts.latency_tasks))
            finally:
                server.stop()
                if bare_dbos is not None:
                    bare_dbos.stop()
            _report_throughput(http, bare, backend)

            started, first_event, first_step = latency
            ok_p50 = started and statistics.median(started) * 1000 <= START_AIM_MS
            ok_max = started and max(started) * 1000 <= START_AIM_MS
            print(
                f"\nstart latency, idle server, sequential tasks:\n"
                f"  turn startedAt - POST sent      {_ms(started)}   (aim <= {START_AIM_MS:g} ms:"
                f" p50 {'PASS' if ok_p50 else 'BELOW'}, max {'PASS' if ok_max else 'BELOW'})\n"
                f"  stream: first SSE event         {_ms(first_event)}\n"
                f"  stream: first start-step event  {_ms(first_step)}   (includes the model)"
            )

            if not opts.skip_memory:
                count = opts.memory_turns
                env = {
                    "KENNEL_TURN_CONCURRENCY": str(count + memory_warm),
                    "KENNEL_OFFLINE_MODEL_DELAY_SECONDS": "60",
                    "KENNEL_TASK_WAIT_SECONDS": "0",
                }
                server = _start_server(tmp, "memory", databases.new("memory"), env)
                try:
                    before, after, took = _run(_memory(server, memory_warm, count))
                finally:
                    server.process.kill()  # its turns sleep a minute: no graceful stop
                    server.process.wait(timeout=10)
                per_turn = (after - before) / count
                verdict = "PASS" if per_turn < MEMORY_AIM_KIB else "BELOW"
                settings = ", ".join(f"{k}={v}" for k, v in env.items())
                print(
                    f"\nmemory per idle waiting turn ({settings}; {memory_warm} warm-up turns "
                    f"first):\n"
                    f"  VmRSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB with {count} more "
                    f"turns running (all running {took:.1f} s after the first POST)\n"
                    f"  {per_turn:.0f} KiB per turn   (aim < {MEMORY_AIM_KIB:g} KiB) {verdict}"
                )
            if not opts.skip_model_latency:
                env = {
                    "KENNEL_OFFLINE_MODEL_DELAY_SECONDS": str(MODEL_DELAY_SECONDS),
                    "KENNEL_TASK_WAIT_SECONDS": "0",
                }
                server = _start_server(tmp, "latency", databases.new("latency"), env)
                try:
                    took, before, peak, cpu = _run(_model_latency(server, opts.latency_turns))
                finally:
                    server.stop()
                turns = opts.latency_turns
                rate = turns / took
                # The aim's reference: the rate at the largest client count (not the best level).
                best = max(http, key=lambda h: h.concurrency).rate if http else 0.0
                per_turn = (peak - before) / turns
                from kennel.core.settings import Settings

                concurrency = Settings.model_fields["turn_concurrency"].default
                ideal = math.ceil(turns / concurrency) * MODEL_DELAY_SECONDS
                print(
                    f"\nunder model latency (offline model {MODEL_DELAY_SECONDS:g} s per request, "
                    f"default KENNEL_TURN_CONCURRENCY={concurrency}, {turns} turns started at "
                    f"once):\n"
                    f"  all completed in {took:.1f} s (ideal {ideal:g} s: "
                    f"{MODEL_DELAY_SECONDS:g} s a wave of {concurrency}): {rate:.1f} turns/s "
                    f"against "
                    f"{best:.1f} tasks/s at {max(opts.concurrency)} clients in phase 1 "
                    f"{'PASS' if rate >= best else 'BELOW'}\n"
                    f"  server RSS {before / 1024:.0f} MiB -> peak {peak / 1024:.0f} MiB: "
                    f"{per_turn:.0f} KiB per waiting turn (aim < {MEMORY_AIM_KIB:g} KiB) "
                    f"{'PASS' if per_turn < MEMORY_AIM_KIB else 'BELOW'}; server CPU "
                    f"{cpu:.1f} s ({cpu / took:.0%} of a core, {cpu / turns * 1000:.0f} ms a turn)"
                )
        finally:
            databases.drop_all()


def _run(coro):
    try:
        import uvloop  # as uvicorn uses it when installed: same loop for both sides
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
