"""Server-sent events of `POST /api/tasks` (`stream: true`) and `GET /api/workers/{id}?stream=true`.

The in-process ASGI client hands a streamed body over once the stream has ended, so these tests
check what a stream holds and when it ends; tests/e2e/test_tasks_stream.py reads it over TCP as
it arrives.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, DeltaToolCalls, FunctionModel

from kennel.agents.offline_model import OfflineModel
from kennel.tasks import starting, streaming
from tests.factories import Member
from tests.factories.pages import PAGE_TITLE, serve_page
from tests.factories.polling import eventually
from tests.factories.workers import new_worker_id

DONE = "[DONE]"
Event = dict[str, Any] | str  # a JSON chunk, or the final "[DONE]"


def parse_sse(response: httpx.Response) -> list[Event]:
    """The `data:` payloads of a Vercel AI UI-message stream, checking its framing."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    events: list[Event] = []
    for block in response.text.split("\n\n"):
        if not block.strip() or block == ": keep-alive":  # an SSE comment, for idle streams
            continue
        assert block.startswith("data: "), block
        data = block.removeprefix("data: ")
        events.append(DONE if data == DONE else json.loads(data))
    return events


def kinds(events: list[Event]) -> list[str]:
    return [e if isinstance(e, str) else e["type"] for e in events]


def collapsed(events: list[Event]) -> list[str]:
    """Event kinds with runs of deltas counted once: live and replayed streams differ only there."""
    out: list[str] = []
    for kind in kinds(events):
        if not (kind.endswith("-delta") and out and out[-1] == kind):
            out.append(kind)
    return out


def text_of(events: list[Event]) -> str:
    return "".join(e["delta"] for e in events if isinstance(e, dict) and e["type"] == "text-delta")


def assert_well_formed(events: list[Event]) -> None:
    """Opens with `start`, ends with `finish` and `[DONE]`; text and tool parts open and close."""
    assert kinds(events)[0] == "start"
    assert kinds(events)[-2:] == ["finish", DONE]
    assert kinds(events).count(DONE) == 1
    open_text: set[str] = set()
    tools: dict[str, str] = {}  # toolCallId -> last state
    for event in events[:-1]:
        assert isinstance(event, dict)
        kind = event["type"]
        if kind == "text-start":
            open_text.add(event["id"])
        elif kind == "text-delta":
            assert event["id"] in open_text
        elif kind == "text-end":
            open_text.remove(event["id"])
        elif kind == "tool-input-start":
            tools[event["toolCallId"]] = kind
        elif kind in ("tool-input-delta", "tool-input-available"):
            assert tools[event["toolCallId"]] in ("tool-input-start", "tool-input-delta")
            tools[event["toolCallId"]] = kind
        elif kind in ("tool-output-available", "tool-output-error"):
            assert tools[event["toolCallId"]] == "tool-input-available"
            tools[event["toolCallId"]] = kind
    assert not open_text
    assert all(state.startswith("tool-output") for state in tools.values())


async def stream_task(client: httpx.AsyncClient, member: Member, **body: Any) -> list[Event]:
    r = await client.post("/api/tasks", json={**body, "stream": True}, headers=member.headers)
    return parse_sse(r)


async def stream_worker(client: httpx.AsyncClient, member: Member, worker_id: str) -> list[Event]:
    r = await client.get(
        f"/api/workers/{worker_id}", params={"stream": "true"}, headers=member.headers
    )
    return parse_sse(r)


async def only_task(client: httpx.AsyncClient, member: Member, worker_id: str) -> dict:
    """The worker's one task, waiting (briefly) for its row to appear."""

    async def tasks() -> list[dict]:
        r = await client.get("/api/tasks", params={"workerId": worker_id}, headers=member.headers)
        return list(r.json()["tasks"])

    (task,) = await eventually(tasks, what=f"a task on {worker_id}", timeout=4, interval=0.02)
    return dict(task)


async def task_and_turns(client: httpx.AsyncClient, member: Member, task_id: str) -> dict:
    r = await client.get(f"/api/tasks/{task_id}", headers=member.headers)
    assert r.status_code == 200, r.text
    return r.json()


class FailingMidAnswer(FunctionModel):
    """Streams the start of an answer, then its connection breaks."""

    def __init__(self) -> None:
        super().__init__(self._respond, stream_function=self._stream, model_name="failing")

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ModelAPIError("failing", "Connection reset by peer")

    async def _stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        yield "The first half of "
        yield "an answer"
        raise ModelAPIError("failing", "Connection reset by peer", in_stream=True)


class TestHonestEnds:
    """A stream that ends in error says so: its open text closed, then an `error` chunk with
    the turn's code and message, then `finish`; never a cut-off answer that looks whole."""

    async def test_a_turn_failing_mid_answer(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(model=FailingMidAnswer())
        worker_id = await new_worker_id(client, member)
        events = await stream_task(client, member, input="Answer me", workerId=worker_id)
        assert_well_formed(events)
        assert collapsed(events) == [
            "start",
            "start-step",
            "text-start",
            "text-delta",
            "text-end",
            "error",
            "finish-step",
            "finish",
            DONE,
        ]
        (error,) = [e for e in events if isinstance(e, dict) and e["type"] == "error"]
        assert error["errorText"].startswith("model_unavailable: ")
        assert "Connection reset by peer" in error["errorText"]
        finish = events[-2]
        assert isinstance(finish, dict)
        assert finish.get("finishReason") == "error"
        task = await only_task(client, member, worker_id)
        (turn,) = (await task_and_turns(client, member, task["id"]))["turns"]
        assert turn["status"] == "error"
        # The worker's stream, replaying the finished turn, ends the same way.
        replayed = await stream_worker(client, member, worker_id)
        assert "error" in kinds(replayed)
        assert kinds(replayed)[-3:] == ["finish-step", "finish", DONE]

    async def test_a_silent_stream_sends_keep_alives(
        self,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(streaming, "KEEP_ALIVE_SECONDS", 0.1)
        reconfigure(model=OfflineModel(delay_seconds=0.6))
        worker_id = await new_worker_id(client, member)
        r = await client.post(
            "/api/tasks",
            json={"input": "Think first", "workerId": worker_id, "stream": True},
            headers=member.headers,
        )
        before_text = r.text.split('"text-delta"')[0]
        assert before_text.count(": keep-alive\n\n") >= 2
        assert_well_formed(parse_sse(r))


class TestCreateStream:
    async def test_text_answer(self, client: httpx.AsyncClient, member: Member) -> None:
        worker_id = await new_worker_id(client, member)
        prompt = "Say hello to every dog in the Kennel today"
        events = await stream_task(client, member, input=prompt, workerId=worker_id)

        assert_well_formed(events)
        assert collapsed(events) == [
            "start",
            "start-step",
            "text-start",
            "text-delta",
            "text-end",
            "finish-step",
            "finish",
            DONE,
        ]
        # The offline model streams three words a chunk: the answer arrives in several deltas.
        assert kinds(events).count("text-delta") >= 3
        answer = f"Done: {prompt}"
        assert text_of(events) == answer
        # One text part: every delta carries the id its text-start opened.
        ids = {e["id"] for e in events if isinstance(e, dict) and e["type"].startswith("text-")}
        assert len(ids) == 1

        task = await only_task(client, member, worker_id)
        found = await task_and_turns(client, member, task["id"])
        assert found["task"]["status"] == "completed"
        (turn,) = found["turns"]
        assert turn["status"] == "completed"
        assert turn["outputText"] == answer
        assert turn["completedAt"] is not None

    async def test_tool_events_come_before_the_text(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(allow_private_fetch=True)
        worker_id = await new_worker_id(client, member)
        with serve_page() as page:
            events = await stream_task(
                client, member, input=f"Read {page.url} and report", workerId=worker_id
            )

        assert_well_formed(events)
        assert collapsed(events) == [
            "start",
            "start-step",
            "tool-input-start",
            "tool-input-delta",
            "tool-input-available",
            "tool-output-available",
            "finish-step",
            "start-step",
            "text-start",
            "text-delta",
            "text-end",
            "finish-step",
            "finish",
            DONE,
        ]
        by_kind = {e["type"]: e for e in events if isinstance(e, dict)}
        call_id = by_kind["tool-input-start"]["toolCallId"]
        assert by_kind["tool-input-start"]["toolName"] == "web_fetch"
        assert by_kind["tool-input-available"]["toolCallId"] == call_id
        assert by_kind["tool-input-available"]["input"] == {"url": page.url}
        output = by_kind["tool-output-available"]
        assert output["toolCallId"] == call_id
        assert output["output"]["title"] == PAGE_TITLE
        assert text_of(events).endswith(f"web_fetch: {PAGE_TITLE}")

        task = await only_task(client, member, worker_id)
        (turn,) = (await task_and_turns(client, member, task["id"]))["turns"]
        assert turn["status"] == "completed"
        assert turn["outputText"] == text_of(events)

    async def test_multipart_stream_field(self, client: httpx.AsyncClient, member: Member) -> None:
        worker_id = await new_worker_id(client, member)
        r = await client.post(
            "/api/tasks",
            data={"input": "Stream from a form", "workerId": worker_id, "stream": "true"},
            files=[("files", ("note.txt", b"form upload", "text/plain"))],
            headers=member.headers,
        )
        events = parse_sse(r)
        assert_well_formed(events)
        assert text_of(events) == "Done: Stream from a form"


class TestWorkerStream:
    async def test_idle_worker_is_an_empty_stream(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        events = await asyncio.wait_for(stream_worker(client, member, worker_id), timeout=5)
        assert_well_formed(events)
        assert not {"text-start", "text-delta", "tool-input-start"} & set(kinds(events))

    async def test_invisible_worker_is_404(self, client: httpx.AsyncClient, member: Member) -> None:
        r = await client.get(
            "/api/workers/wrk_nope", params={"stream": "true"}, headers=member.headers
        )
        assert r.status_code == 404

    async def test_finished_task_is_replayed(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(allow_private_fetch=True)
        worker_id = await new_worker_id(client, member)
        with serve_page() as page:
            live = await stream_task(client, member, input=f"Read {page.url}", workerId=worker_id)
        replayed = await asyncio.wait_for(stream_worker(client, member, worker_id), timeout=5)

        assert_well_formed(replayed)
        assert text_of(replayed) == text_of(live)
        assert PAGE_TITLE in text_of(replayed)
        # The same parts and steps as the live stream, only with fewer (merged) deltas.
        assert collapsed(replayed) == collapsed(live)
        outputs = [
            e for e in replayed if isinstance(e, dict) and e["type"] == "tool-output-available"
        ]
        assert outputs[0]["output"]["url"] == page.url

    async def test_follows_the_turn_in_flight(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(model=OfflineModel(delay_seconds=0.3))
        worker_id = await new_worker_id(client, member)
        first = await client.post(
            "/api/tasks",
            json={"input": "First walk of the day", "workerId": worker_id},
            headers=member.headers,
        )
        task_id = first.json()["metadata"]["taskId"]
        prompt = "Second walk around the park with all the dogs"
        follow_up = asyncio.create_task(
            client.post(
                "/api/tasks", json={"input": prompt, "taskId": task_id}, headers=member.headers
            )
        )
        try:
            for _ in range(200):  # until the follow-up turn is recorded
                turns = (await task_and_turns(client, member, task_id))["turns"]
                if len(turns) == 2:
                    break
                await asyncio.sleep(0.01)
            assert [t["status"] for t in turns] == ["completed", turns[1]["status"]]
            assert turns[1]["status"] in ("pending", "running")

            events = await asyncio.wait_for(stream_worker(client, member, worker_id), timeout=30)

            # The stream closed only when the turn had ended and been recorded.
            after = await task_and_turns(client, member, task_id)
            assert after["turns"][1]["status"] == "completed"
        finally:
            response = await follow_up
        assert response.status_code == 200, response.text

        assert_well_formed(events)
        text = text_of(events)
        # The finished first turn is replayed (one delta), then the live turn follows in the
        # offline model's chunks of three words: several deltas, never one merged text.
        assert text.startswith("Done: First walk of the day")
        assert text.endswith(f"Done: {prompt}")
        deltas = [e["delta"] for e in events if isinstance(e, dict) and e["type"] == "text-delta"]
        assert deltas[0] == "Done: First walk of the day"
        assert len(deltas) >= 4
        assert response.json()["output_text"] == f"Done: {prompt}"

    async def test_turn_queued_but_not_yet_enqueued(
        self,
        client: httpx.AsyncClient,
        member: Member,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # A turn's row is committed before its workflow is enqueued; a worker stream opened in
        # between must wait for the workflow rather than fail.
        enqueue = starting.enqueue_turn
        recorded = asyncio.Event()

        async def late_enqueue(rt: Any, turn_id: str) -> None:
            recorded.set()
            await asyncio.sleep(0.5)
            await enqueue(rt, turn_id)

        monkeypatch.setattr(starting, "enqueue_turn", late_enqueue)
        worker_id = await new_worker_id(client, member)
        post = asyncio.create_task(
            client.post(
                "/api/tasks",
                json={"input": "Late start", "workerId": worker_id},
                headers=member.headers,
            )
        )
        try:
            await asyncio.wait_for(recorded.wait(), timeout=10)
            events = await asyncio.wait_for(stream_worker(client, member, worker_id), timeout=30)
        finally:
            response = await post
        assert response.status_code == 200, response.text
        assert_well_formed(events)
        assert "error" not in kinds(events)
        assert text_of(events) == "Done: Late start"
