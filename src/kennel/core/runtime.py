"""What the server's code works with: its settings, its database and its model.

Endpoints read it with `of_request(request)` (the app's `state.runtime`), typed; not as a
FastAPI dependency, which cost 8 % of a cheap read's throughput (bench/api.py: 2,906-2,991
reads/s without it, 2,662-2,719 with it). DBOS workflows and steps run
outside any request, so they call `current()` (and only they do), then pass it down. DBOS is
a process-wide singleton, so one server runs per process; the app installs its runtime when
it starts and removes it when it stops.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request
from pydantic_ai.models import Model

from kennel.core.settings import Settings
from kennel.db import Database
from kennel.workspaces import Workspace

__all__ = ["Runtime", "current", "install", "of_request", "uninstall"]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    db: Database
    model: Model
    login_secret: bytes = b""  # read from the database when the first sign-in form is made
    # Set when the server starts stopping (SIGTERM): waiting requests and streams answer with
    # what they have, instead of holding the process up until their turns end.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def workspace(self, worker_id: str) -> Workspace:
        """The worker's files, in the database: the same in every process."""
        return Workspace(self.db, worker_id, max_file_bytes=self.settings.max_file_bytes)


def of_request(request: Request) -> Runtime:
    """The runtime of the app that serves `request` (`create_app` sets it)."""
    rt: Runtime = request.app.state.runtime
    return rt


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _current
    if _current is not None:
        raise RuntimeError("a Kennel server is already running in this process")
    _current = runtime


def uninstall() -> None:
    global _current
    _current = None


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("no Kennel server is running in this process")
    return _current
