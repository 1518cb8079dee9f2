"""What the server's code works with: its settings, its database, its model and the API keys
it has checked lately.

Requests reach it as `request.app.state.runtime`. DBOS workflows and steps run outside any
request, so they call `current()` (and only they do), then pass it down. DBOS is a process-wide
singleton, so one server runs per process; the app installs its runtime when it starts and
removes it when it stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic_ai.models import Model

from kennel.auth.dependencies import VerifiedKeys
from kennel.db import Database
from kennel.settings import Settings
from kennel.workspaces import Workspace

__all__ = ["Runtime", "current", "install", "uninstall"]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    db: Database
    model: Model
    verified_keys: VerifiedKeys = field(default_factory=VerifiedKeys)
    login_secret: bytes = b""  # read from the database when the first sign-in form is made

    def workspace(self, worker_id: str) -> Workspace:
        return Workspace(
            self.settings.data_dir, worker_id, max_file_bytes=self.settings.max_file_bytes
        )


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
