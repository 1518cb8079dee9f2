"""Budgets: a turn over its cap stops with an error naming it, and nothing past the cap is spent.

Requests are counted with the offline model's trace file (one line per request it answered)
and pages with the local page server's hit list; caps are lowered with `reconfigure`.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from kennel.agents.offline_model import OfflineModel
from kennel.core.settings import BudgetCaps
from kennel.tasks.budgets import DEFAULT_CAPS
from tests.factories import Member
from tests.factories.pages import PageServer, page_html, serve_page

PAGE_TITLE = "Budget Fixture Page"


@pytest.fixture
def page() -> Iterator[PageServer]:
    """A page on 127.0.0.1 that counts its fetches."""
    with serve_page(page_html(PAGE_TITLE)) as served:
        yield served


def requests_made(trace: Path, prompt: str) -> int:
    """The traced model's requests for `prompt`. The app is shared: a turn of another test (a
    schedule firing late) may call the model this test installed, and is not counted."""
    if not trace.exists():
        return 0
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    return sum(1 for line in lines if line.get("prompt", "").startswith(prompt[:100]))


async def run(client: httpx.AsyncClient, member: Member, **body: object) -> dict:
    r = await client.post("/api/tasks", json=body, headers=member.headers)
    assert r.status_code == 200, r.text
    worker = r.json()
    assert worker["running"] is False, worker
    return worker


async def brief_worker(client: httpx.AsyncClient, member: Member) -> str:
    """A worker with short instructions (one made on the fly has the input as instructions)."""
    r = await client.post(
        "/api/workers", json={"instructions": "Be brief."}, headers=member.headers
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def task_of(client: httpx.AsyncClient, member: Member, worker: dict) -> dict:
    r = await client.get(f"/api/tasks/{worker['metadata']['taskId']}", headers=member.headers)
    assert r.status_code == 200, r.text
    return r.json()


def assert_failed(worker: dict, task: dict, code: str) -> dict:
    """The turn ended in error `code`, the same in the Worker object, the turn and the task."""
    assert worker["error"] is not None, worker
    assert worker["error"]["code"] == code
    assert worker["status"] == "completed"  # the Worker's status has no error value
    assert worker["metadata"]["taskStatus"] == "error"
    assert task["task"]["status"] == "error"
    (turn,) = task["turns"]
    assert turn["status"] == "error"
    assert turn["error"] == worker["error"]
    assert turn["completedAt"] is not None
    assert turn["outputText"] == worker["output_text"] == ""
    return turn


def assert_credits(turn: dict) -> None:
    assert isinstance(turn["credits"], int)
    assert turn["credits"] == math.ceil((turn["inputTokens"] + turn["outputTokens"]) / 1000)


class TestRequestCap:
    async def test_stops_before_the_request_past_the_cap(
        self,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
        page: PageServer,
        tmp_path: Path,
    ) -> None:
        trace = tmp_path / "trace.jsonl"
        reconfigure(
            model=OfflineModel(trace_file=trace),
            budget_caps={"low": BudgetCaps(requests=1)},
            allow_private_fetch=True,
        )
        # Fetching the page and answering takes two requests; the cap allows one.
        worker = await run(client, member, input=f"Summarise {page.url}", budget="low")
        turn = assert_failed(worker, await task_of(client, member, worker), "budget_exceeded")
        message = worker["error"]["message"]
        assert "'low' budget" in message
        assert "request_limit of 1" in message
        assert requests_made(trace, f"Summarise {page.url}") == 1
        assert page.requests == ["/page.html"]  # the tool call the one request asked for ran
        assert turn["inputTokens"] > 0
        assert turn["outputTokens"] > 0
        assert_credits(turn)
        assert worker["usage"]["credits"] == turn["credits"] == 1

    async def test_other_budgets_keep_their_caps(
        self,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
        page: PageServer,
        tmp_path: Path,
    ) -> None:
        trace = tmp_path / "trace.jsonl"
        reconfigure(
            model=OfflineModel(trace_file=trace),
            budget_caps={"low": BudgetCaps(requests=1)},
            allow_private_fetch=True,
        )
        worker = await run(client, member, input=f"Summarise {page.url}")  # standard
        assert worker["error"] is None, worker
        assert PAGE_TITLE in worker["output_text"]
        assert requests_made(trace, f"Summarise {page.url}") == 2


class TestTokenCap:
    async def test_stops_after_the_request_that_crossed_it(
        self,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
        page: PageServer,
        tmp_path: Path,
    ) -> None:
        trace = tmp_path / "trace.jsonl"
        reconfigure(
            model=OfflineModel(trace_file=trace),
            budget_caps={"low": BudgetCaps(tokens=10)},
            allow_private_fetch=True,
        )
        worker = await run(client, member, input=f"Summarise {page.url}", budget="low")
        turn = assert_failed(worker, await task_of(client, member, worker), "budget_exceeded")
        message = worker["error"]["message"]
        assert "'low' budget" in message
        assert "total_tokens_limit of 10" in message
        # A response's size is known only once it arrived: the first one crossed the cap, so
        # neither the page fetch it asked for nor a second request happened.
        assert requests_made(trace, f"Summarise {page.url}") == 1
        assert page.requests == []
        assert turn["inputTokens"] + turn["outputTokens"] > 10
        assert_credits(turn)

    async def test_credits_never_pass_the_cap(
        self,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
        tmp_path: Path,
    ) -> None:
        # 1,000 tokens is a cap of one credit; the only request sends about 1,500.
        trace = tmp_path / "trace.jsonl"
        reconfigure(
            model=OfflineModel(trace_file=trace), budget_caps={"low": BudgetCaps(tokens=1000)}
        )
        worker_id = await brief_worker(client, member)
        worker = await run(client, member, input="woof " * 1500, budget="low", workerId=worker_id)
        task = await task_of(client, member, worker)
        turn = assert_failed(worker, task, "budget_exceeded")
        assert requests_made(trace, "woof " * 1500) == 1
        assert turn["inputTokens"] > 1500  # the tokens are reported as used
        assert turn["credits"] == 1  # but what the turn is charged stops at the cap
        assert task["task"]["totals"]["credits"] == worker["usage"]["credits"] == 1


class TestWallTime:
    async def test_stops_a_turn_that_runs_too_long(
        self,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
        page: PageServer,
        tmp_path: Path,
    ) -> None:
        trace = tmp_path / "trace.jsonl"
        # The first answer (a tool call streamed in two halves) takes 2 s; the cap is 1.5 s.
        reconfigure(
            model=OfflineModel(delay_seconds=1.0, trace_file=trace),
            budget_caps={"low": BudgetCaps(seconds=1.5)},
            allow_private_fetch=True,
        )
        worker = await run(client, member, input=f"Summarise {page.url}", budget="low")
        turn = assert_failed(worker, await task_of(client, member, worker), "budget_exceeded")
        message = worker["error"]["message"]
        assert "'low' budget" in message
        assert "wall time of 1.5 s" in message
        assert (
            requests_made(trace, f"Summarise {page.url}") == 1
        )  # the request in flight was cut short
        assert page.requests == []
        assert 1500 <= turn["durationMs"] < 10_000
        # The half of the tool call streamed before the cap is charged, estimated: a response
        # cut off never reports its usage (it counted 0 after 300 s of a real model talking).
        assert "counted as about" in message
        assert "estimated" in message
        assert turn["outputTokens"] > 0
        assert turn["credits"] == 1
        assert turn["inputTokens"] == 0

    def test_default_caps(self) -> None:
        assert DEFAULT_CAPS["low"] == BudgetCaps(
            requests=4, tokens=20_000, seconds=60, output_tokens=500
        )
        assert DEFAULT_CAPS["unlimited"] == BudgetCaps()


class TestCredits:
    async def test_whole_credits_from_real_token_counts(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(model=OfflineModel())
        task_id = f"credits-{member.user_id}"
        # About 1,500 tokens of input: two started thousands, so two credits.
        worker_id = await brief_worker(client, member)
        first = await run(client, member, input="bark " * 1500, taskId=task_id, workerId=worker_id)
        assert first["error"] is None, first
        second = await run(client, member, input="And briefly again?", taskId=task_id)
        assert second["error"] is None, second
        task = await task_of(client, member, second)
        turns = task["turns"]
        assert [t["status"] for t in turns] == ["completed", "completed"]
        for turn in turns:
            assert turn["inputTokens"] > 0
            assert turn["outputTokens"] > 0
            assert_credits(turn)
        assert turns[0]["credits"] == 2
        # The follow-up resends the first turn as history, so it is at least as big.
        assert turns[1]["inputTokens"] > turns[0]["inputTokens"]
        totals = task["task"]["totals"]
        assert totals["credits"] == sum(t["credits"] for t in turns)
        assert totals["durationMs"] == sum(t["durationMs"] for t in turns)
        assert totals["turnCount"] == 2
        assert second["usage"] == {"credits": totals["credits"], "durationMs": totals["durationMs"]}
        # The same numbers through /turns.
        listed = (await client.get(f"/api/tasks/{task_id}/turns", headers=member.headers)).json()[
            "items"
        ]
        assert [
            (t["inputTokens"], t["outputTokens"], t["credits"], t["durationMs"]) for t in listed
        ] == [(t["inputTokens"], t["outputTokens"], t["credits"], t["durationMs"]) for t in turns]


class WrongOutputModel(FunctionModel):
    """Always answers with output that breaks the worker's schema ("count" as a string): as
    JSON text in native structured-output mode, else as a call of the output tool.

    `requests` counts the requests of turns asked `prompt` only: the app is shared by the
    tests of a session, and a turn an earlier test left queued may run during this one, with
    this model (one such request made a loaded CI run count 4 where the turn made 3)."""

    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.requests = 0
        super().__init__(self._respond, stream_function=self._stream, model_name="wrong")

    def _part(self, messages: list[ModelMessage], info: AgentInfo) -> ToolCallPart | TextPart:
        prompts = [
            part.content
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, UserPromptPart)
        ]
        if self.prompt in prompts:
            self.requests += 1
        wrong = {"count": "many"}
        if info.model_request_parameters.output_mode == "native":
            return TextPart(json.dumps(wrong))
        assert info.output_tools, "the worker's schema should be offered as an output tool"
        return ToolCallPart(info.output_tools[0].name, wrong, tool_call_id="out")

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[self._part(messages, info)])

    async def _stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        part = self._part(messages, info)
        if isinstance(part, TextPart):
            yield part.content
        else:
            yield {0: DeltaToolCall(part.tool_name, json.dumps(part.args), tool_call_id="out")}


class TestInvalidOutput:
    async def test_output_the_schema_rejects_ends_in_error(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        model = WrongOutputModel("How many dogs?")
        reconfigure(model=model)
        schema = {
            "type": "object",
            "properties": {"count": {"type": "integer"}},
            "required": ["count"],
        }
        r = await client.post(
            "/api/workers",
            json={"instructions": "Count.", "outputSchema": schema},
            headers=member.headers,
        )
        assert r.status_code == 201, r.text
        worker = await run(client, member, input="How many dogs?", workerId=r.json()["id"])
        turn = assert_failed(worker, await task_of(client, member, worker), "model_output_invalid")
        assert worker["structured_output"] is None
        message = worker["error"]["message"]
        # It says why: the model kept answering, and what was wrong with the answer.
        assert "usable answer" in message
        assert "does not match the output schema at count: 'many' is not of type" in message
        assert "validation error for" not in message  # pydantic's report, not for people
        assert "count" in message
        assert "integer" in message
        assert model.requests == 3  # the first answer and the agent's two output retries
        assert turn["inputTokens"] > 0
        assert_credits(turn)
