"""`kennel backup PATH`: a consistent copy of the SQLite database, made while the server runs.

SQLite's online backup API (`sqlite3.Connection.backup`) copies the pages in one step: in WAL
mode that is one read transaction, so the copy is the database as of one commit, and the
server's writers never wait for it (readers do not block writers). Copied in several steps
instead, every commit of another connection would restart the copy, and a busy server's never
ends. The copy is written beside its destination and renamed into place once it passed
`PRAGMA integrity_check`, so PATH is either absent or a whole database.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BackupError", "BackupResult", "backup_sqlite"]


class BackupError(Exception):
    """Why no backup was made; one line."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size: int
    tasks: int
    turns: int


def backup_sqlite(source: Path, destination: Path) -> BackupResult:
    """Copy the database at `source` to `destination`, which must not exist."""
    if not source.exists():
        raise BackupError(f"no database at {source}")
    if destination.exists():
        raise BackupError(f"{destination} exists; give a new path (nothing is overwritten)")
    if not destination.parent.is_dir():
        raise BackupError(f"no folder {destination.parent}")
    partial = destination.with_name(f".{destination.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        with contextlib.closing(sqlite3.connect(source)) as src:
            src.execute("PRAGMA busy_timeout=30000")
            with contextlib.closing(sqlite3.connect(partial)) as copy:
                src.backup(copy, pages=-1)
                # The copy stands alone: one file, no -wal beside it to lose.
                copy.execute("PRAGMA journal_mode=DELETE")
                verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
                if verdict != "ok":
                    raise BackupError(f"the copy failed its integrity check: {verdict}")
                tasks = copy.execute("SELECT count(*) FROM tasks").fetchone()[0]
                turns = copy.execute("SELECT count(*) FROM turns").fetchone()[0]
        os.replace(partial, destination)
    except sqlite3.Error as exc:
        raise BackupError(f"backup failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(destination, destination.stat().st_size, tasks, turns)
