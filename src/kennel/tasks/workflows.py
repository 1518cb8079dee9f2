"""The durable turn: a DBOS workflow whose model requests and tool calls are steps.

`run_turn` is keyed by the turn id (the DBOS workflow id), so enqueueing a turn twice runs it
once, and a server killed mid-turn resumes it on restart without repeating finished steps.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import math
import time
from typing import Any, Literal, NotRequired, TypedDict

from dbos import DBOS
from pydantic_ai import NativeOutput, capture_run_messages
from pydantic_ai.exceptions import AgentRunError
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    ToolReturnPart,
)
from pydantic_ai.toolsets import AbstractToolset

from kennel.agents.agent import EVENTS_STREAM, MODEL_ID, event_adapter, turn_agent
from kennel.agents.failures import cause_of, failure_of, without_secrets
from kennel.agents.mcp_tools import MCP_RESULT_KEY, mcp_toolset
from kennel.agents.notices import TurnNotice, cut_off_notices, unused_tool_notices
from kennel.agents.output import OutputSchemaError, schema_output_type
from kennel.agents.tools import TurnDeps, offered_built_ins
from kennel.core import runtime
from kennel.core.durable import WHILE_TRANSIENT, Queue
from kennel.core.runtime import Runtime
from kennel.core.settings import BudgetCaps, Settings
from kennel.db import Read
from kennel.metrics import record_model_requests, record_turn_end, record_turn_started
from kennel.tasks import control, listeners, waiters
from kennel.tasks import repository as repo
from kennel.tasks.budgets import caps_for, credits_for, model_settings, usage_limits
from kennel.workers import repository as workers_repo

__all__ = [
    "TURN_QUEUE",
    "TurnContext",
    "TurnOutcome",
    "finish_abandoned_turns",
    "run_turn",
    "turn_context",
    "turn_queue",
]

log = logging.getLogger("kennel.tasks")

TURN_QUEUE = "kennel_turns"


class TurnContext(TypedDict):
    """The turn's workflow input: what the agent needs, as of when the turn was queued."""

    turn_id: str
    task_id: str
    worker_id: str
    input: str
    budget: str
    caps: dict[str, Any]  # BudgetCaps, dumped
    instructions: str
    output_schema: dict[str, Any] | None
    history: list[Any]  # the task's earlier completed turns' messages, dumped
    # Queued by an older version: absent (NotRequired), read with .get().
    organization_id: NotRequired[str]
    mcp_servers: NotRequired[list[str]]  # the worker's MCP servers, by name
    task_public_id: NotRequired[str]  # the API's task id (a client's own, when it chose one)


class TurnOutcome(TypedDict):
    """How a turn ended: the columns its end records, and its status."""

    status: Literal["completed", "error"]
    output_text: str
    structured_output: dict[str, Any] | None
    messages: list[Any]
    sources: list[dict[str, str]]
    input_tokens: int
    output_tokens: int
    requests: int
    credits: int
    error_code: str | None
    error_message: str | None
    notices: list[dict[str, str]]  # see kennel.agents.notices


def turn_queue(settings: Settings) -> Queue:
    """The queue turns wait in (a turn queued here wakes its runner: `core.wakeup`)."""
    return Queue(TURN_QUEUE, settings.turn_concurrency, settings.queue_polling_seconds)


async def turn_context(r: Read, settings: Settings, turn_id: str) -> TurnContext | None:
    """What the agent needs for a pending turn, as of when it is queued; None when the turn
    is gone or no longer pending.

    It is the workflow's input, so DBOS records it once and a recovered turn runs on the same
    instructions, output schema and history even if the worker changed meanwhile."""
    turn = await repo.turn(r, turn_id)
    task = await repo.by_id(r, turn.task_id) if turn else None
    if turn is None or task is None or turn.status != "pending":
        return None
    worker = await workers_repo.by_id(r, task.worker_id)
    instructions = await workers_repo.instructions_of(r, task.worker_id, task.instructions_version)
    history: list[Any] = []
    for earlier in await repo.turns_of(r, task.id):
        if earlier.seq < turn.seq and earlier.status == "completed":
            history.extend(earlier.messages)
    return {
        "turn_id": turn.id,
        "task_id": task.id,
        "worker_id": task.worker_id,
        "input": turn.input,
        "budget": turn.budget,
        "caps": caps_for(settings, turn.budget).model_dump(),
        "instructions": instructions or "",
        "output_schema": worker.output_schema if worker is not None else None,
        "history": history,
        "organization_id": task.organization_id,
        "mcp_servers": list(worker.mcp_servers) if worker is not None else [],
        "task_public_id": task.public_id,
    }


@DBOS.workflow()
async def run_turn(turn_id: str, context: TurnContext) -> str:
    """Run one turn; whatever goes wrong inside it, the turn ends (`error` at worst)."""
    # Marking the turn running and recording its outcome are steps for their retries: a
    # passing database fault (a dropped connection, a held lock, a full disk) is tried again
    # until it passes (`WHILE_TRANSIENT`), never the end of a turn whose model had answered.
    rt = runtime.current()
    if not await DBOS.run_step_async(WHILE_TRANSIENT, _mark_running, rt, turn_id):
        return await _ended_already(rt, turn_id)  # aborted before it started
    record_turn_started()
    began = time.monotonic()
    cause: str | None = None
    try:
        outcome, cause = await _run_agent(context)
    except Exception:  # a bug: the turn still ends, and the log says where (DBOS's own stops,
        # cancellation among them, are BaseExceptions and go through)
        log.exception("turn %s failed unexpectedly", turn_id, extra={"turnId": turn_id})
        outcome = _internal_error(turn_id)
    try:
        concerned = await DBOS.run_step_async(
            WHILE_TRANSIENT, _record_outcome, rt, turn_id, outcome
        )
    except Exception:  # e.g. an answer the database will not store: record the failure instead
        log.exception("turn %s: recording its outcome failed", turn_id, extra={"turnId": turn_id})
        outcome = _internal_error(turn_id)
        concerned = await DBOS.run_step_async(
            WHILE_TRANSIENT, _record_outcome, rt, turn_id, outcome
        )
    if concerned is None:
        # Ended already: aborted meanwhile (archived, worker deleted), or by this very step
        # run before a crash that came before DBOS recorded it.
        return await _ended_already(rt, turn_id)
    seconds = time.monotonic() - began
    _log_end(context, outcome, seconds, cause)
    record_turn_end(
        outcome["status"],
        outcome["error_code"],
        seconds=seconds,
        input_tokens=outcome["input_tokens"],
        output_tokens=outcome["output_tokens"],
        credits=outcome["credits"],
    )
    await listeners.start_listeners(turn_id, concerned)
    return str(outcome["status"])


async def _ended_already(rt: Runtime, turn_id: str) -> str:
    """The end of a turn this run did not record: aborted (whoever aborted it starts the
    listeners), or recorded by an earlier run of this workflow, cut short by a crash before
    it started the listeners stored with the end: they are started (again: a no-op)."""
    async with rt.db.read(snapshot=False) as r:
        end = await repo.end_of(r, turn_id)
    if end is None:
        return "aborted"
    if end.status != "aborted":
        await listeners.start_listeners(turn_id, end.listeners)
    return end.status


def _log_end(context: TurnContext, outcome: TurnOutcome, seconds: float, cause: str | None) -> None:
    """One line per turn for operators, naming its task, worker and model: errors at WARNING
    with their code, message and cause (what the agent raised: a provider's failure in the
    provider library's words), so a failing model server shows in the log, not only in the
    API's answers. No prompt, no key."""
    turn_id = context["turn_id"]
    fields = {
        "turnId": turn_id,
        "taskId": context.get("task_public_id") or context["task_id"],
        "workerId": context["worker_id"],
        "model": runtime.current().settings.model,  # KENNEL_MODEL, as the operator wrote it
        "status": outcome["status"],
        "durationMs": round(seconds * 1000),
        "requests": outcome["requests"],
        "inputTokens": outcome["input_tokens"],
        "outputTokens": outcome["output_tokens"],
    }
    code = outcome.get("error_code")
    if code:
        fields.update(code=code, error=without_secrets(outcome.get("error_message") or ""))
        if cause:
            fields["cause"] = cause
        log.warning("turn %s ended in error %s: %s", turn_id, code, fields["error"], extra=fields)
    else:
        log.info("turn %s %s", turn_id, outcome["status"], extra=fields)


async def _mark_running(rt: Runtime, turn_id: str) -> bool:
    """False when the turn was aborted before it started."""
    async with rt.db.write() as w:
        return await repo.start_turn(w, turn_id)


async def _record_outcome(rt: Runtime, turn_id: str, outcome: TurnOutcome) -> list[str] | None:
    """Record the turn's end; the listeners it concerns, or None when it had ended already."""
    values = {k: v for k, v in outcome.items() if k != "status"}
    async with rt.db.write() as w:
        concerned = await control.end_turn(
            w, turn_id, outcome["status"], values, only_from=("running",)
        )
    waiters.notify(turn_id)
    # The events stream is not closed: DBOS readers stop when the workflow has ended and they
    # have read all it wrote, which saves a system-database write per turn.
    return concerned


def _internal_error(turn_id: str) -> TurnOutcome:
    message = (
        f"Kennel failed while running this turn; this is a bug. The server's log has the details"
        f" under turn id {turn_id}."
    )
    return _outcome(None, [], ("internal_error", message), BudgetCaps())


async def finish_abandoned_turns(rt: Runtime) -> int:
    """End every turn still marked pending or running whose workflow has ended without
    recording it (it failed or was cancelled, in this version or an older one); how many."""
    async with rt.db.read() as r:
        candidates = [*await repo.running_turn_ids(r), *await repo.pending_turn_ids(r)]
    ended = 0
    for turn_id in candidates:
        status = await DBOS.get_workflow_status_async(turn_id)
        if status is None or status.status not in _ENDED_WITHOUT_RESULT:
            continue
        message = (
            f"The turn's run ended without an outcome ({status.status.lower()}); the server's"
            f" log may say more under turn id {turn_id}."
        )
        values = {"error_code": "internal_error", "error_message": message}
        async with rt.db.write() as w:
            concerned = await control.end_turn(
                w, turn_id, "error", values, only_from=repo.IN_FLIGHT
            )
        if concerned is None:
            continue
        ended += 1
        record_turn_end("error", "internal_error")
        log.warning("turn %s ended as an error at start-up: %s", turn_id, status.status)
        await listeners.start_listeners(turn_id, concerned)
    return ended


_ENDED_WITHOUT_RESULT = frozenset({"ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"})


async def _run_agent(context: TurnContext) -> tuple[TurnOutcome, str | None]:
    """Run the agent for one turn and describe how it ended, errors included; with the cause
    of a failure the agent raised, for the log."""
    caps = BudgetCaps(**context["caps"])
    history = ModelMessagesTypeAdapter.validate_python(context["history"])
    schema = context["output_schema"]
    deps = TurnDeps(
        worker_id=context["worker_id"],
        turn_id=context["turn_id"],
        record_file=functools.partial(_record_file, context["turn_id"]),
        output_schema=schema,
    )
    try:
        output_type: Any = _structured(schema) if schema else str
    except OutputSchemaError as exc:  # stored before Kennel checked schemas this way
        invalid = ("invalid_output_schema", f"The outputSchema {exc}.")
        return _outcome(None, [], invalid, caps), None
    toolsets: list[AbstractToolset[TurnDeps]] = []
    notices: list[dict[str, str]] = []
    if context.get("mcp_servers"):
        toolset, problems = await mcp_toolset(context["organization_id"], context["mcp_servers"])
        toolsets.extend([toolset] if toolset else [])
        notices = [{"code": "mcp_server_unavailable", "message": p} for p in problems]
        await _publish_notices(notices, first=0)
    error: tuple[str, str] | None = None
    cause: str | None = None
    output: Any = None
    with capture_run_messages() as captured:
        try:
            async with asyncio.timeout(caps.seconds):
                result = await turn_agent.run(
                    context["input"],
                    deps=deps,
                    model=MODEL_ID,
                    instructions=context["instructions"] or None,
                    message_history=history or None,
                    output_type=output_type,
                    usage_limits=usage_limits(caps),
                    model_settings=model_settings(caps),
                    toolsets=toolsets or None,
                )
            output = result.output
        except (AgentRunError, TimeoutError) as exc:
            error = failure_of(exc, budget=context["budget"], seconds=caps.seconds) or (
                "agent_error",
                str(exc),
            )
            cause = cause_of(exc)
    new_messages: list[ModelMessage] = list(captured[len(history) :])
    record_model_requests(new_messages)
    cut_off = 0
    if error is not None and error[0] == "budget_exceeded" and _response_cut_off(new_messages):
        # The wall time stopped a response mid-stream: it never reported its usage. What it
        # said is charged, estimated at four characters a token, and the message says so.
        cut_off = math.ceil(deps.streamed_chars[0] / 4)
        if cut_off:
            note = f" The answer cut off is counted as about {cut_off} output tokens"
            error = (error[0], error[1] + note + " (estimated: it never reported its usage).")
    if error is None:
        offered = offered_built_ins(runtime.current().settings)
        unused = unused_tool_notices(context["input"], new_messages, offered)
        unused += cut_off_notices(new_messages, context["budget"], caps.output_tokens)
        await _publish_notices(unused, first=len(notices))
        notices += unused
    outcome = _outcome(
        output, new_messages, error, caps, extra_output_tokens=cut_off, notices=notices
    )
    return outcome, cause


async def _publish_notices(notices: list[dict[str, str]], *, first: int) -> None:
    """Send notices to the turn's stream readers (as `data-notice` chunks), numbered from
    `first` so a reader counts each once."""
    if notices:
        events = [
            event_adapter.dump_json(
                TurnNotice(code=notice["code"], message=notice["message"])
            ).decode()
            for notice in notices
        ]
        await DBOS.write_stream_async(EVENTS_STREAM, {"s": "notices", "n": first, "e": events})


def _structured(schema: dict[str, Any]) -> Any:
    """The output type of a worker's schema: the provider's native JSON-Schema mode where the
    model has one (llama.cpp, vLLM, OpenAI and others constrain decoding to the schema, which a
    small model needs: it rarely calls an output tool), else pydantic-ai's output tool. Either
    way the answer is checked against the schema and a mismatch is sent back to the model."""
    checked = schema_output_type(schema)
    if runtime.current().model.profile.get("supports_json_schema_output"):
        return NativeOutput(checked)
    return checked


async def _record_file(turn_id: str, path: str, media_type: str, size: int) -> None:
    """A file the turn's agent wrote, published by the turn (the agent's `FileRecorder`)."""
    async with runtime.current().db.write() as w:
        await repo.record_file(w, turn_id, path, media_type, size)


def _response_cut_off(messages: list[ModelMessage]) -> bool:
    """Whether the last request's response was cut off while streaming: none, or the part of
    one pydantic-ai keeps, with no usage reported."""
    if not messages:
        return False
    last = messages[-1]
    return not isinstance(last, ModelResponse) or last.usage.output_tokens == 0


def _outcome(
    output: Any,
    messages: list[ModelMessage],
    error: tuple[str, str] | None,
    caps: BudgetCaps,
    *,
    extra_output_tokens: int = 0,
    notices: list[dict[str, str]] | None = None,
) -> TurnOutcome:
    input_tokens = requests = 0
    output_tokens = extra_output_tokens
    for message in messages:
        if isinstance(message, ModelResponse):
            requests += 1
            input_tokens += message.usage.input_tokens
            output_tokens += message.usage.output_tokens
    structured = output if isinstance(output, dict) else None
    if structured is not None:
        text = json.dumps(structured, ensure_ascii=False)
    else:
        text = output if isinstance(output, str) else ""
    return {
        "status": "error" if error else "completed",
        "output_text": text,
        "structured_output": structured,
        "messages": ModelMessagesTypeAdapter.dump_python(messages, mode="json"),
        "sources": _sources(messages),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "requests": requests,
        "credits": credits_for(input_tokens, output_tokens, caps),
        "error_code": error[0] if error else None,
        "error_message": error[1] if error else None,
        "notices": notices or [],
    }


def _sources(messages: list[ModelMessage]) -> list[dict[str, str]]:
    """The pages the turn read with web_fetch, the results web_search found and the web links
    MCP tools gave, once each."""
    seen: dict[str, dict[str, str]] = {}
    for message in messages:
        for part in getattr(message, "parts", ()):
            if not isinstance(part, ToolReturnPart) or not isinstance(part.content, dict):
                continue
            if part.tool_name == "web_fetch":
                found = [part.content]
            elif part.tool_name == "web_search":
                found = [r for r in part.content.get("results", ()) if isinstance(r, dict)]
            elif MCP_RESULT_KEY in part.content:  # the web pages an MCP tool linked to
                found = [r for r in part.content.get("links", ()) if isinstance(r, dict)]
            else:
                continue
            for page in found:
                url = str(page.get("url") or "")
                if url and url not in seen:
                    seen[url] = {
                        "id": "src_" + hashlib.sha256(url.encode()).hexdigest()[:16],
                        "type": "url",
                        "url": url,
                        "title": str(page.get("title") or url),
                    }
    return list(seen.values())
