"""The agent every turn runs: one durable pydantic-ai agent, configured per run.

DBOS registers an agent's steps by name once per process, so there is exactly one agent,
built at import time. What varies per turn (model, instructions, history, output schema,
budget) is passed to `run()`; the model is resolved from the running server.
"""

from __future__ import annotations

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

    Runs inside DBOS steps, so a step re-run after a crash publishes its events again; each item
    carries (step, index) so readers drop the repeats.
    """
    if DBOS.workflow_id is None:
        async for _ in events:  # a direct run (outside a workflow) has nowhere to publish
            pass
        return
    step = DBOS.step_id
    index = 0
    async for event in events:
        await DBOS.write_stream_async(
            EVENTS_STREAM, {"s": step, "n": index, "e": event_adapter.dump_json(event).decode()}
        )
        index += 1


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
