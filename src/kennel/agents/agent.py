"""The agent every turn runs: one durable pydantic-ai agent, configured per run.

DBOS registers an agent's steps by name once per process, so there is exactly one agent,
built at import time. What varies per turn (model, instructions, history, output schema,
budget) is passed to `run()`; the model is resolved from the running server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable
from typing import Any

from dbos import DBOS
from pydantic import TypeAdapter
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.capabilities import ResolveModelId
from pydantic_ai.durable_exec.dbos import DBOSDurability
from pydantic_ai.messages import (
    AgentStreamEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ThinkingPart,
    ThinkingPartDelta,
    ToolCallPart,
    ToolCallPartDelta,
)
from pydantic_ai.models import Model
from pydantic_ai.models.instrumented import InstrumentationSettings

from kennel.agents.notices import TurnNotice
from kennel.agents.tools import (
    TurnDeps,
    list_files,
    offer_web_search,
    read_file,
    web_fetch,
    web_search,
    write_file,
)
from kennel.core import runtime

__all__ = [
    "EVENTS_STREAM",
    "MODEL_ID",
    "TurnNotice",
    "event_adapter",
    "instrument_turns",
    "turn_agent",
]

MODEL_ID = "kennel:configured"
EVENTS_STREAM = "events"

# Built after the custom events are defined (TurnNotice), or it reads them back as unknown.
event_adapter: TypeAdapter[AgentStreamEvent] = TypeAdapter(AgentStreamEvent)
# How long a publisher gathers events before writing them (see _BatchingPublisher).
LINGER_SECONDS = 0.02


def _resolve_model(_ctx: Any, model_id: str) -> Model | None:
    return runtime.current().model if model_id == MODEL_ID else None


async def _publish_events(
    _ctx: RunContext[TurnDeps], events: AsyncIterable[AgentStreamEvent]
) -> None:
    """Publish live events to the turn's DBOS stream, for SSE readers in any process.

    Runs inside DBOS steps, so a step re-run after a crash publishes its events again; each event
    carries (step, index) so readers drop the repeats.
    """
    if DBOS.workflow_id is None:
        async for _ in events:  # a direct run (outside a workflow) has nowhere to publish
            pass
        return
    publisher = _BatchingPublisher(DBOS.step_id)
    said = _ctx.deps.streamed_chars
    said[0] = 0  # one call of this handler streams one model response
    try:
        async for event in events:
            said[0] += _delta_chars(event)
            publisher.add(event_adapter.dump_json(event).decode())
    except BaseException:
        with contextlib.suppress(Exception):  # best effort: the step's own error comes first
            await publisher.flush()
        raise
    await publisher.flush()


def _delta_chars(event: AgentStreamEvent) -> int:
    if isinstance(event, PartStartEvent):
        part = event.part
        if isinstance(part, TextPart | ThinkingPart):
            return len(part.content)
        if isinstance(part, ToolCallPart):
            return len(part.args_as_json_str())
        return 0
    if isinstance(event, PartDeltaEvent):
        delta = event.delta
        if isinstance(delta, TextPartDelta | ThinkingPartDelta):
            return len(delta.content_delta or "")
        if isinstance(delta, ToolCallPartDelta):
            args = delta.args_delta
            return len(args) if isinstance(args, str) else len(str(args or ""))
    return 0


class _BatchingPublisher:
    """Writes events to the stream in batches, one write at a time.

    Every write is a transaction on the system database; a model streams tokens faster than
    that. A quiet publisher waits `linger` seconds after an event before writing, so events
    close together go in one write (the offline model's whole answer, or a few tokens of a
    real one), and events that arrive while a write runs go together in the next. The linger
    is well under the readers' polling interval, and `flush()` cuts it short at the end of the
    stream. One stream item is `{"s": step, "n": index of its first event, "e": [JSON, ...]}`.
    """

    def __init__(self, step: int | None, *, linger: float = LINGER_SECONDS) -> None:
        self.step = step
        self.linger = linger
        self.next_index = 0
        self.pending: list[str] = []
        self.writer: asyncio.Task[None] | None = None
        self.flushing = asyncio.Event()

    def add(self, event_json: str) -> None:
        self.pending.append(event_json)
        if self.writer is not None and self.writer.done():
            self.writer.result()  # a failed write stops the step, as a direct write would
            self.writer = None
        if self.writer is None:
            self.writer = asyncio.create_task(self._drain())

    async def flush(self) -> None:
        """Wait until every added event is written; raise what a write raised."""
        self.flushing.set()
        if self.writer is not None:
            writer, self.writer = self.writer, None
            await writer
        if self.pending:  # added after the writer's last check: not expected, but not lost
            await self._drain()

    async def _drain(self) -> None:
        if self.linger > 0 and not self.flushing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flushing.wait(), self.linger)
        while self.pending:
            batch, self.pending = self.pending, []
            item = {"s": self.step, "n": self.next_index, "e": batch}
            await DBOS.write_stream_async(EVENTS_STREAM, item)
            self.next_index += len(batch)


turn_agent: Agent[TurnDeps, Any] = Agent(
    MODEL_ID,
    name="kennel_turn",
    deps_type=TurnDeps,
    retries={"output": 2},
    tools=[
        Tool[TurnDeps](web_search, prepare=offer_web_search),
        web_fetch,
        list_files,
        read_file,
        write_file,
    ],
    capabilities=[
        ResolveModelId(_resolve_model),
        DBOSDurability(event_stream_handler=_publish_events),
    ],
)


def instrument_turns(*, include_content: bool) -> None:
    """Have every turn make pydantic-ai's spans (agent run, model request, tool call; GenAI
    semantic conventions) with the global tracer provider (`kennel.core.tracing`).

    `include_content` (`KENNEL_TRACE_CONTENT`, off by default): prompts, instructions,
    answers, tool arguments and results go into the spans too. Off, the spans keep names, token
    counts and timings: what a worker was asked and found stays out of the tracing backend."""
    turn_agent.instrument = InstrumentationSettings(
        include_content=include_content, include_binary_content=include_content
    )
