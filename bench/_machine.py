"""What both benchmarks ask of this machine: a free port, a process's CPU time, and scratch
PostgreSQL databases."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sqlalchemy.engine import make_url

__all__ = ["cpu_seconds", "free_port", "scratch_postgres"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime


async def scratch_postgres(admin_url: str, name: str, create: bool) -> None:
    """Create (or drop) database `name` on the server of `admin_url`."""
    import asyncpg

    url = make_url(admin_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
