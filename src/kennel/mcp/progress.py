"""Following a turn for a tool call: `notifications/progress` with its text as it arrives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)

from kennel.core.runtime import Runtime
from kennel.tasks import repository as tasks_repo
from kennel.tasks import service as tasks
from kennel.tasks.streaming import TurnFailed

__all__ = ["MESSAGE_CHARS", "Progress", "follow_turn"]

# A progress message is shown as a status line: the end of the text so far, not all of it (a
# message per chunk carrying the whole answer would grow with its square).
MESSAGE_CHARS = 1000
# Chunks arrive per token from a real model; one notification per interval is plenty to read.
_INTERVAL_SECONDS = 0.2

Report = Callable[[float, float | None, str | None], Awaitable[None]]


class Progress:
    """Reports a turn's events to a client that asked for progress (it sent a token)."""

    def __init__(self, report: Report, *, interval: float = _INTERVAL_SECONDS) -> None:
        self._report = report
        self._interval = interval
        self.text = ""
        self._sent = 0
        self._sent_text: str | None = None
        self._last = 0.0

    async def event(self, event: AgentStreamEvent) -> None:
        status = None
        if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
            self.text += event.part.content
        elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
            self.text += event.delta.content_delta
        elif isinstance(event, FunctionToolCallEvent):
            status = f"Calling {event.part.tool_name}…"
        else:
            return
        now = time.monotonic()
        if status is not None or now - self._last >= self._interval:
            await self._send(status)

    async def flush(self) -> None:
        """Send the text as it ends, when the last notification left some of it out."""
        if self.text != self._sent_text:
            await self._send(None)

    async def _send(self, status: str | None) -> None:
        self._sent += 1  # progress must increase with every notification
        self._last = time.monotonic()
        if status is None:
            self._sent_text = self.text
        message = status or self.text
        if len(message) > MESSAGE_CHARS:
            message = "…" + message[-(MESSAGE_CHARS - 1) :]
        await self._report(self._sent, None, message or None)


async def follow_turn(rt: Runtime, turn_id: str, seconds: float, progress: Progress | None) -> None:
    """Wait up to `seconds` for the turn to end, reporting its events to `progress`."""
    if seconds <= 0:
        return
    deadline = time.monotonic() + seconds
    if progress is not None:
        try:
            async with asyncio.timeout(seconds):
                async for event in tasks.turn_events(rt, turn_id):
                    await progress.event(event)
            await progress.flush()
        except (TimeoutError, TurnFailed):
            pass
        # The events end with the turn's last step, a moment before the turn is recorded as
        # ended; `wait_for_turn` would first wait a second for a signal already sent.
        if not await _in_flight(rt, turn_id):
            return
    remaining = deadline - time.monotonic()
    if remaining > 0:
        await tasks.wait_for_turn(turn_id, remaining)


async def _in_flight(rt: Runtime, turn_id: str) -> bool:
    async with rt.db.read(snapshot=False) as r:
        turn = await tasks_repo.turn(r, turn_id)
    return turn is not None and turn.status in tasks_repo.IN_FLIGHT
