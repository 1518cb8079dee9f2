"""DBOS Transact: configuration, launch and shutdown.

It knows no domain: the app imports the workflow modules and hands them over with the queues
their domains declare (`tasks.workflows.turn_queue`, `mail.workflows.mail_queue`)."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from dbos import DBOS, DBOSConfig, StepOptions

from kennel import __version__
from kennel.core import wakeup
from kennel.core.causes import is_transient
from kennel.core.settings import Settings
from kennel.core.tracing import tracing_enabled
from kennel.db.sqlite import SYNCHRONOUS
from kennel.metrics import record_database_error

__all__ = [
    "STREAM_POLLING_SECONDS",
    "WHILE_TRANSIENT",
    "Queue",
    "application_version",
    "launch",
    "shutdown",
    "sqlite_engine_kwargs",
]

log = logging.getLogger("kennel.durable")


# How often a reader of a turn's stream looks for what is new (it is also woken by PostgreSQL's
# NOTIFY): only while someone reads, so it can be short (server-sent events).
STREAM_POLLING_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Queue:
    """A DBOS queue a domain's workflows wait in."""

    name: str
    concurrency: int
    polling_seconds: float


def _retry_if_transient(exc: BaseException) -> bool:
    """`is_transient`, counting each database error a step meets (the metrics' `step`)."""
    record_database_error(exc, "step")
    return is_transient(exc)


# A step that meets a passing database or disk fault (a dropped connection, a held lock, a
# full disk) is tried again, 0.5 s later and then half as long again each time (at most an
# hour apart, for hours in all); any other error is the step's answer at once.
WHILE_TRANSIENT: StepOptions = {
    "retries_allowed": True,
    "interval_seconds": 0.5,
    "backoff_rate": 1.5,
    "max_attempts": 25,
    "should_retry": _retry_if_transient,
}


def _wait_out_a_full_disk() -> None:
    """Make DBOS wait out a full disk on SQLite as it does on PostgreSQL.

    DBOS retries its own statements while the database is unreachable, and on PostgreSQL
    while it lacks resources (class 53, `disk_full` included), but on SQLite only while it is
    locked: a step whose work was done (a model's answer) but whose result could not be
    recorded for lack of disk raised, and the turn ended `internal_error`. Its test for a
    SQLite error worth retrying is widened to "database or disk is full" (DBOS 3.4; the test
    `tests/e2e/test_disk_full.py` shows whether a release still needs it)."""
    import dbos._sys_db as sys_db

    only_locked = sys_db.retriable_sqlite_exception  # type: ignore[attr-defined]  # imported there
    if getattr(only_locked, "kennel", False):
        return

    def locked_or_full(e: Exception) -> bool:
        orig = getattr(e, "orig", None)
        return only_locked(e) or "database or disk is full" in str(e if orig is None else orig)

    locked_or_full.kennel = True  # type: ignore[attr-defined]  # the mark of the patched test
    sys_db.retriable_sqlite_exception = locked_or_full  # type: ignore[attr-defined]  # see above


_wait_out_a_full_disk()


def application_version() -> str:
    return f"kennel-{__version__}"


def config(settings: Settings) -> DBOSConfig:
    dbos_config: DBOSConfig = {
        "name": "kennel",
        # The app's own database: SQLite file by default, PostgreSQL (schema `dbos`) when set.
        "system_database_url": settings.sync_database_url,
        # Pinned so that a restart recovers the turns that were in flight: DBOS only recovers
        # workflows of its own application version, which by default hashes workflow sources.
        "application_version": application_version(),
        "executor_id": settings.executor_id,
        "log_level": "WARNING",
        # On SQLite (no LISTEN/NOTIFY) DBOS's listener thread polls for what its waiters wait
        # for. Kennel's only such waiters are stream readers, which re-read every
        # `STREAM_POLLING_SECONDS` themselves (`live_events`): the listener's own poll adds
        # nothing for them, and at 50 ms it cost an idle server 0.3 % of a core. DBOS's
        # default of a second keeps it a fallback.
        "notification_listener_polling_interval_sec": 1.0,
    }
    if tracing_enabled():
        # DBOS's own spans (one per workflow and step), made with the tracer provider Kennel
        # installed (`kennel.core.tracing`): with no endpoints of its own it adds no exporter.
        dbos_config["enable_otlp"] = True
        dbos_config["otel_attribute_format"] = "semconv"
    if not settings.is_sqlite:
        # Its share of the process's budget, its LISTEN connection (taken from the pool and
        # detached) among them. Opened as needed and kept: closing them on return made a
        # busy process reconnect for most of DBOS's statements.
        dbos_config["db_engine_kwargs"] = {
            "pool_size": settings.connection_shares.dbos - 1,
            "max_overflow": 0,
            "pool_timeout": 30,
            "pool_pre_ping": True,
            "connect_args": {"application_name": "kennel-dbos"},
        }
    if settings.is_sqlite:
        dbos_config["db_engine_kwargs"] = sqlite_engine_kwargs(
            settings.database_url_object.database or ""
        )
    return dbos_config


def sqlite_engine_kwargs(path: str) -> dict[str, Any]:
    """DBOS's engine settings for the SQLite file at `path` (`bench/tasks.py` gives its bare
    DBOS the same).

    - No ping: DBOS pings every connection it checks out, about ten times a turn, and a local
      file's connections never go stale.
    - Kennel's own `synchronous=NORMAL` (`db.sqlite.SYNCHRONOUS`; sqlite3 leaves FULL, an
      fsync for each of the several commits DBOS makes a turn).
    - Its pool as SQLAlchemy makes it. One connection, on which DBOS's threads took turns
      instead of waiting in SQLite's busy handler, tripled goodput under 4x overload
      (`bench/overload.py`: 3.6-4.6 -> 13.8 tasks/s), but a DBOS thread can hold a write
      transaction while it waits for a second connection: with one, it held the lock for the
      pool's timeout and every other writer of the file met "database is locked" (a CI run).
    """
    return {"pool_pre_ping": False, "creator": functools.partial(_sqlite_connection, path)}


def _sqlite_connection(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False)
    connection.execute(SYNCHRONOUS)
    return connection


async def launch(
    settings: Settings, *, workflows: Sequence[ModuleType], queues: Sequence[Queue]
) -> None:
    """Start DBOS (recovering this executor's unfinished workflows) and register the queues.

    `workflows`: the modules that declare them, imported by the caller: DBOS must know every
    workflow before it launches, or it cannot recover one."""
    log.debug("launching DBOS with the workflows of %s", ", ".join(m.__name__ for m in workflows))
    if tracing_enabled():
        logging.getLogger("dbos").addFilter(_no_log_exporter_warning)
    wakeup.install({queue.name: queue.concurrency for queue in queues})
    DBOS(config=config(settings))
    DBOS.launch()
    for queue in queues:
        await DBOS.register_queue_async(
            queue.name,
            worker_concurrency=queue.concurrency,
            polling_interval_sec=queue.polling_seconds,
        )
    wakeup.queues_registered()


def _no_log_exporter_warning(record: logging.LogRecord) -> bool:
    """Drop DBOS's warning that OTLP is on without a logger provider, at each launch: Kennel
    sends traces over OTLP, and its log to stderr, on purpose."""
    return not str(record.msg).startswith("OTLP is enabled but logger provider not set")


def shutdown() -> None:
    DBOS.destroy(workflow_completion_timeout_sec=0)
    # DBOS made its (now shut down) thread pool the loop's default executor; give the loop a
    # working one back, or every later `asyncio.to_thread` on it fails.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())
