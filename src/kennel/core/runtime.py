"""What the server's code works with: its settings, its database and its model.

Endpoints take it as `RuntimeDep` (the app's `state.runtime`). DBOS workflows and steps run
outside any request, so they call `current()` (and only they do), then pass it down. DBOS is
a process-wide singleton, so one server runs per process; the app installs its runtime when
it starts and removes it when it stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from pydantic_ai.models import Model

from kennel.core.settings import Settings
from kennel.core.workspaces import Workspace
from kennel.db import Database

__all__ = ["Runtime", "RuntimeDep", "current", "install", "of_request", "uninstall"]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    db: Database
    model: Model
    login_secret: bytes = b""  # read from the database when the first sign-in form is made

    def workspace(self, worker_id: str) -> Workspace:
        return Workspace(
            self.settings.data_dir, worker_id, max_file_bytes=self.settings.max_file_bytes
        )


def of_request(request: Request) -> Runtime:
    """The runtime of the app that serves `request` (`create_app` sets it)."""
    rt: Runtime = request.app.state.runtime
    return rt


async def _of_request(request: Request) -> Runtime:
    # async: FastAPI runs a plain function dependency in a thread.
    return of_request(request)


RuntimeDep = Annotated[Runtime, Depends(_of_request)]

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
