"""What a server runs beside its requests (the schedule dispatcher, the SMTP front door).

One small protocol: the app starts each once DBOS has launched, in order, and stops them in
reverse order before DBOS shuts down.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["BackgroundService"]


class BackgroundService(Protocol):
    async def start(self) -> None:
        """Begin; return once running (or raise why it cannot)."""

    async def stop(self) -> None:
        """End; return once stopped. Called once, only after `start` returned."""
