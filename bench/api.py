"""Requests per second of an authenticated read and a create, against `GET /healthz`.

Hand-run, not a test: `.venv/bin/python bench/api.py [--duration 5] [--concurrency 16]
[--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--with-logs]`.

It starts the real `kennel serve` on a free 127.0.0.1 port with a fresh database (a SQLite file
in a temp folder, or a scratch PostgreSQL database created and dropped here), then drives each
endpoint with the same client: N keep-alive connections for a warm-up, then a fixed duration.
The ratios are what matter: a read should cost at most twice a health check, a create at most
five times. The server and the client share the machine, so the table also shows the CPU each
used (the server's includes its background threads; its idle CPU is printed first); a client
near 100% means the client, not the server, set the pace. httpx (`--client httpx`) costs several
times more CPU per request than the built-in raw client, enough to be the bottleneck on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from _machine import cpu_seconds, free_port, scratch_postgres
from sqlalchemy.engine import make_url

from kennel.auth.keys import generate_key

PYTHON = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
AIMS = {"read": 0.5, "create": 0.2}  # req/s of the endpoint divided by req/s of /healthz


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    expected: int
    body: str | None = None  # JSON body; "{n}" becomes the request's number


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    latencies: list[float]
    duration: float
    server_cpu: float  # fraction of one core, over the measured window
    client_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration

    @property
    def cpu_ms(self) -> float:
        """Server CPU per request: steadier than req/s when other work shares the machine."""
        return self.server_cpu * self.duration * 1000 / max(1, self.requests)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


# --- client ------------------------------------------------------------------------------------


class _RawConnection:
    """A minimal keep-alive HTTP/1.1 client: far cheaper per request than httpx, so it leaves
    more of the shared CPU to the server (which is what is being measured)."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        extra = f"Content-Length: {len(body)}\r\n" if body is not None else ""
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.head}{extra}\r\n"
        self.writer.write(head.encode() + (body or b""))
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(h.partition(":")[::2] for h in lines[1:] if h)
        length = {k.lower(): v for k, v in headers.items()}.get("content-length")
        if length is None:
            raise RuntimeError("response without Content-Length")
        await self.reader.readexactly(int(length))
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _HttpxConnection:
    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers=headers,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=60,
        )

    async def request(self, method: str, path: str, body: bytes | None) -> int:
        return (await self.client.request(method, path, content=body)).status_code

    async def close(self) -> None:
        await self.client.aclose()


async def _drive(
    kind: str,
    port: int,
    key: str,
    endpoint: Endpoint,
    connections: int,
    offset: int,
    start: float,
    warmup: float,
    duration: float,
) -> tuple[int, int, list[float], float]:
    """Keep `connections` requests in flight until the window closes; count the window's ones."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    measure_from, stop_at = start + warmup, start + warmup + duration
    latencies: list[float] = []
    errors = 0
    counter = offset

    async def one_connection() -> None:
        nonlocal errors, counter
        conn = (_RawConnection if kind == "raw" else _HttpxConnection)(port, headers)
        try:
            while (began := time.perf_counter()) < stop_at:
                counter += 1
                body = (
                    endpoint.body.replace("{n}", str(counter)).encode() if endpoint.body else None
                )
                try:
                    status = await conn.request(endpoint.method, endpoint.path, body)
                except (OSError, asyncio.IncompleteReadError, RuntimeError, httpx.HTTPError):
                    status = 0
                    await conn.close()
                    conn = (_RawConnection if kind == "raw" else _HttpxConnection)(port, headers)
                ended = time.perf_counter()
                if measure_from <= began and ended <= stop_at:
                    if status == endpoint.expected:
                        latencies.append(ended - began)
                    else:
                        errors += 1
        finally:
            await conn.close()

    delay = start - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    cpu_before = time.process_time()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return len(latencies), errors, latencies, time.process_time() - cpu_before


def _client_process(args: tuple) -> tuple[int, int, list[float], float]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_drive(*args))


# --- server ------------------------------------------------------------------------------------


def _start_server(
    tmp: Path, database_url: str, key: str, with_logs: bool
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "KENNEL_DATABASE_URL": database_url,
        "KENNEL_DATA_DIR": str(tmp / "data"),
        "KENNEL_BOOTSTRAP_API_KEY": key,
        "KENNEL_LOG_LEVEL": "INFO" if with_logs else "WARNING",
        "KENNEL_SMTP_PORT": "0",
        "KENNEL_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    log = (tmp / "server.log").open("wb")
    server = subprocess.Popen(
        [str(PYTHON), "-m", "kennel", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("server did not become healthy:\n" + (tmp / "server.log").read_text()[-3000:])


# --- benchmark ---------------------------------------------------------------------------------


def _measure(
    pool, opts: argparse.Namespace, server_pid: int, port: int, key: str, endpoint: Endpoint
) -> Result:
    shares = [
        opts.concurrency // opts.processes + (i < opts.concurrency % opts.processes)
        for i in range(opts.processes)
    ]
    start = time.perf_counter() + 0.3  # every process starts together (perf_counter is system-wide)
    jobs = [
        (opts.client, port, key, endpoint, n, i * 10_000_000, start, opts.warmup, opts.duration)
        for i, n in enumerate(shares)
        if n
    ]
    pending = pool.map_async(_client_process, jobs)
    time.sleep(max(0.0, start + opts.warmup - time.perf_counter()))
    server_before = cpu_seconds(server_pid)
    time.sleep(opts.duration)
    server_cpu = (cpu_seconds(server_pid) - server_before) / opts.duration
    parts = pending.get(timeout=opts.warmup + opts.duration + 60)
    return Result(
        endpoint.name,
        requests=sum(p[0] for p in parts),
        errors=sum(p[1] for p in parts),
        latencies=[x for p in parts for x in p[2]],
        duration=opts.duration,
        server_cpu=server_cpu,
        client_cpu=sum(p[3] for p in parts) / (opts.warmup + opts.duration),
    )


def _idle_cpu(server_pid: int, seconds: float = 1.0) -> float:
    before = cpu_seconds(server_pid)
    time.sleep(seconds)
    return (cpu_seconds(server_pid) - before) / seconds


def _report(
    results: dict[str, Result], opts: argparse.Namespace, backend: str, idle: float
) -> None:
    print(
        f"\nKennel API bench: {backend}, {opts.concurrency} connections, {opts.processes} client "
        f"process(es) ({opts.client}), {opts.warmup:g}s warm-up + {opts.duration:g}s each, "
        f"logs {'on' if opts.with_logs else 'off'}, {os.cpu_count()} CPUs, "
        f"server idle cpu {idle:.0%}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'endpoint':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'server cpu':>12}{'cpu ms/req':>12}{'client cpu':>12}"
    )
    for r in results.values():
        print(
            f"{r.name:<10}{r.rps:>9.0f}{r.percentile(0.5):>9.2f}{r.percentile(0.99):>9.2f}"
            f"{r.errors:>8}{r.server_cpu:>12.0%}{r.cpu_ms:>12.2f}{r.client_cpu:>12.0%}"
        )
    base = results["healthz"].rps or 1.0
    for name, aim in AIMS.items():
        ratio = results[name].rps / base
        verdict = "PASS" if ratio >= aim else "BELOW"
        print(f"{name} / healthz = {ratio:.2f}   (aim >= {aim})   {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per endpoint")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=16, help="connections in flight")
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--postgres", metavar="URL", help="use a scratch database on this server")
    parser.add_argument("--with-logs", action="store_true", help="KENNEL_LOG_LEVEL=INFO")
    opts = parser.parse_args()
    if opts.duration <= 0 or opts.warmup < 0 or not 1 <= opts.processes <= opts.concurrency:
        parser.error("need --duration > 0, --warmup >= 0 and 1 <= --processes <= --concurrency")

    key = generate_key()
    scratch = f"kennel_bench_{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="kennel-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if opts.postgres:
            asyncio.run(scratch_postgres(opts.postgres, scratch, create=True))
            database_url = make_url(opts.postgres).set(database=scratch).render_as_string(False)
        else:
            database_url = f"sqlite:///{tmp / 'kennel.sqlite3'}"
        server = None
        try:
            server, port = _start_server(tmp, database_url, key, opts.with_logs)
            auth = {"Authorization": f"Bearer {key}"}
            created = httpx.post(
                f"http://127.0.0.1:{port}/api/workers", headers=auth, json={"title": "Bench Read"}
            )
            created.raise_for_status()
            worker_id = created.json()["id"]
            idle = _idle_cpu(server.pid)
            endpoints = [
                Endpoint("healthz", "GET", "/healthz", 200),
                Endpoint("read", "GET", f"/api/workers/{worker_id}", 200),
                # Distinct titles: e-mail local parts are the slugged title plus 24 random bits.
                Endpoint("create", "POST", "/api/workers", 201, '{"title": "Bench Worker {n}"}'),
            ]
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(opts.processes) as pool:
                results = {
                    e.name: _measure(pool, opts, server.pid, port, key, e) for e in endpoints
                }
            _report(results, opts, "PostgreSQL" if opts.postgres else "SQLite", idle)
        finally:
            if server is not None:
                server.terminate()
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.kill()
            if opts.postgres:
                asyncio.run(scratch_postgres(opts.postgres, scratch, create=False))


if __name__ == "__main__":
    main()
