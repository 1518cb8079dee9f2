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
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import ResolveModelId
from pydantic_ai.durable_exec.dbos import DBOSDurability
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.models import Model

from kennel import runtime
from kennel.agents.tools import TurnDeps, list_files, read_file, web_fetch, write_file

__all__ = ["EVENTS_STREAM", "MODEL_ID", "event_adapter", "turn_agent"]

MODEL_ID = "kennel:configured"
EVENTS_STREAM = "events"

event_adapter: TypeAdapter[AgentStreamEvent] = TypeAdapter(AgentStreamEvent)


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
    try:
        async for event in events:
            publisher.add(event_adapter.dump_json(event).decode())
    except BaseException:
        with contextlib.suppress(Exception):  # best effort: the step's own error comes first
            await publisher.flush()
        raise
    await publisher.flush()


class _BatchingPublisher:
    """Writes events to the stream as they come, several per write while a write is under way.

    Every write is a transaction on the system database; a model streams faster than that, so
    events that arrive while one write runs go together in the next. The first event of a quiet
    spell is written as soon as the loop runs: batching adds no delay for readers. One stream
    item is `{"s": step, "n": index of its first event, "e": [event JSON, ...]}`.
    """

    def __init__(self, step: int | None) -> None:
        self.step = step
        self.next_index = 0
        self.pending: list[str] = []
        self.writer: asyncio.Task[None] | None = None

    def add(self, event_json: str) -> None:
        self.pending.append(event_json)
        if self.writer is not None and self.writer.done():
            self.writer.result()  # a failed write stops the step, as a direct write would
            self.writer = None
        if self.writer is None:
            self.writer = asyncio.create_task(self._drain())

    async def flush(self) -> None:
        """Wait until every added event is written; raise what a write raised."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            await writer
        if self.pending:  # added after the writer's last check: not expected, but not lost
            await self._drain()

    async def _drain(self) -> None:
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
    tools=[web_fetch, list_files, read_file, write_file],
    capabilities=[
        ResolveModelId(_resolve_model),
        DBOSDurability(event_stream_handler=_publish_events),
    ],
)
