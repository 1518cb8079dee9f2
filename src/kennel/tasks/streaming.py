"""Server-sent events in the Vercel AI SDK UI-message stream protocol.

Live chunks come from the turn's DBOS stream, which lives in the database, so a stream can be
read by any process; the stored messages of finished turns are replayed as the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from dbos import DBOS
from dbos._error import DBOSNonExistentWorkflowError
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    PartEndEvent,
    PartStartEvent,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.ui.vercel_ai import VercelAIEventStream
from pydantic_ai.ui.vercel_ai.response_types import BaseChunk, StartChunk
from starlette.responses import StreamingResponse

from kennel.agents.agent import EVENTS_STREAM, TurnNotice, event_adapter
from kennel.tasks.repository import TurnRow

__all__ = [
    "KEEP_ALIVE_SECONDS",
    "SSE_RESPONSE",
    "STOPPING_MESSAGE",
    "TurnFailed",
    "id_headers",
    "live_events",
    "replayed_events",
    "sse_response",
    "until_stopping",
]

# A comment line sent when a stream has said nothing this long: the official SDKs give up on
# a read after 60 s, and a slow model (or a long prompt on a CPU) can think longer than that
# before its first token.
KEEP_ALIVE_SECONDS = 15.0
_KEEP_ALIVE = b": keep-alive\n\n"


class TurnFailed(Exception):
    """The turn a stream followed ended in error. Raised by the events at their end, it becomes
    the stream's `error` chunk (`errorText`: "<code>: <message>"), after the open parts are
    closed and before `finish`, so no reader takes a cut-off answer for a whole one."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# How the OpenAPI document describes a 200 that may be a stream (`stream=true`). Before
# OpenAPI 3.2 (FastAPI writes 3.1), an event stream's `schema` describes each of its events.
SSE_RESPONSE: dict[str, Any] = {
    "description": "The JSON document, or with `stream` a stream of server-sent events.",
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "description": (
                    "One server-sent event of the Vercel AI SDK UI-message stream protocol. The"
                    " first is `start`, whose `messageMetadata` names the task, turn and worker;"
                    " the last is `[DONE]`."
                ),
                "required": ["data"],
                "properties": {
                    "data": {
                        "type": "string",
                        "description": 'A JSON chunk (`{"type": "text-delta", ...}`), or `[DONE]`.',
                    },
                    "event": {"type": "string"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer"},
                },
            }
        }
    },
}


# How long a reader waits for a recorded turn's workflow to be enqueued before giving up.
_ENQUEUE_WAIT_SECONDS = 10.0


async def live_events(turn_id: str, *, polling_seconds: float) -> AsyncIterator[AgentStreamEvent]:
    """The turn's events as they happen, from the start; ends when the turn does."""
    seen: set[tuple[int | None, int]] = set()
    deadline = time.monotonic() + _ENQUEUE_WAIT_SECONDS
    while True:
        try:
            async for item in DBOS.read_stream_async(
                turn_id, EVENTS_STREAM, polling_interval_sec=polling_seconds
            ):
                batch = item["e"]
                for offset, event_json in enumerate([batch] if isinstance(batch, str) else batch):
                    # A step re-run after a crash publishes its events again, maybe batched
                    # otherwise: each event keeps its (step, index).
                    key = (item["s"], item["n"] + offset)
                    if key in seen:
                        continue
                    seen.add(key)
                    yield event_adapter.validate_json(event_json)
            return
        except DBOSNonExistentWorkflowError:
            # A turn's row is committed before its workflow is enqueued: a reader that comes in
            # between waits for the workflow (not forever: a request that died there leaves the
            # turn pending until the next start-up enqueues it).
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(polling_seconds)


STOPPING_MESSAGE = (
    "The server is stopping. The turn goes on and ends on a running Kennel process: follow it"
    " with GET /api/workers/{id}?stream=true, or read it with GET /api/tasks/{taskId}."
)


async def until_stopping(
    events: AsyncIterator[AgentStreamEvent], stopping: asyncio.Event
) -> AsyncIterator[AgentStreamEvent]:
    """`events` until they end or the server starts stopping; then `TurnFailed`
    (`server_stopping`), so the stream says why it ends early instead of hanging up."""
    stop = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            following = asyncio.ensure_future(anext(events))
            await asyncio.wait({following, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                with contextlib.suppress(BaseException):
                    await following
                raise TurnFailed("server_stopping", STOPPING_MESSAGE)
            try:
                event = following.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        stop.cancel()
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(BaseException):
                await aclose()


def replayed_events(turns: list[TurnRow]) -> list[AgentStreamEvent]:
    """Stored messages of finished turns as the events a live run would have produced."""
    events: list[AgentStreamEvent] = []
    calls: dict[str, ToolCallPart] = {}
    for turn in turns:
        for message in ModelMessagesTypeAdapter.validate_python(turn.messages or []):
            if isinstance(message, ModelResponse):
                for index, part in enumerate(message.parts):
                    events.append(PartStartEvent(index=index, part=part))
                    events.append(PartEndEvent(index=index, part=part))
                    if isinstance(part, ToolCallPart):
                        calls[part.tool_call_id] = part
            elif isinstance(message, ModelRequest):
                for request_part in message.parts:
                    if isinstance(request_part, ToolReturnPart):
                        if (call := calls.pop(request_part.tool_call_id, None)) is not None:
                            # The call event turns the stream to the request side, so the next
                            # response opens a new step (finish-step, start-step) as live runs do.
                            events.append(FunctionToolCallEvent(call))
                        events.append(FunctionToolResultEvent(part=request_part))
        events.extend(
            TurnNotice(code=notice["code"], message=notice["message"])
            for notice in turn.notices or []
        )
    return events


@dataclass
class _StreamWithIds(VercelAIEventStream[Any, Any]):
    """The UI-message stream, whose `start` chunk carries the task's and turn's ids (as
    `messageMetadata`), so a client that did not choose the task id can send a follow-up."""

    ids: dict[str, str] | None = None

    async def before_stream(self) -> AsyncIterator[BaseChunk]:
        yield StartChunk(message_id=(self.ids or {}).get("turnId"), message_metadata=self.ids)


def sse_response(
    events: AsyncIterator[AgentStreamEvent], *, ids: dict[str, str] | None = None
) -> StreamingResponse:
    """The events as server-sent events; `ids` (taskId, turnId, workerId) go into the `start`
    chunk and into `X-Kennel-*` response headers."""
    stream = _StreamWithIds(run_input=None, ids=ids)
    response = stream.streaming_response(stream.transform_stream(events))
    response.body_iterator = _with_keep_alives(response.body_iterator)
    response.headers.update(id_headers(ids or {}))
    return response


async def _with_keep_alives(body: AsyncIterable[Any]) -> AsyncIterator[Any]:
    """`body`, with an SSE comment whenever it has been silent for `KEEP_ALIVE_SECONDS`."""
    iterator = aiter(body)
    next_chunk: asyncio.Future[Any] | None = None
    try:
        while True:
            if next_chunk is None:
                next_chunk = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({next_chunk}, timeout=KEEP_ALIVE_SECONDS)
            if not done:
                yield _KEEP_ALIVE
                continue
            try:
                chunk = next_chunk.result()
            except StopAsyncIteration:
                return
            next_chunk = None
            yield chunk
    finally:
        if next_chunk is not None and not next_chunk.done():
            next_chunk.cancel()
            with contextlib.suppress(BaseException):
                await next_chunk
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def id_headers(ids: dict[str, str]) -> dict[str, str]:
    """`{"taskId": ...}` as `X-Kennel-Task-Id: ...` response headers."""
    return {"X-Kennel-" + re.sub(r"([a-z])([A-Z])", r"\1-\2", k).title(): v for k, v in ids.items()}
