"""The turn's workflow as an operator sees it: one log line per turn's end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, DeltaToolCalls, FunctionModel

from tests.factories import Member
from tests.factories.polling import eventually
from tests.factories.tasks import post_task
from tests.factories.workers import new_worker_id


def rate_limited(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    raise ModelHTTPError(429, "limited", {"error": {"message": "Rate limit reached"}})


async def rate_limited_stream(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    rate_limited(messages, info)
    yield ""


async def _end_lines(caplog: pytest.LogCaptureFixture, turn_id: str) -> list[logging.LogRecord]:
    def lines() -> list[logging.LogRecord]:
        return [
            rec
            for rec in caplog.records
            if getattr(rec, "turnId", None) == turn_id and hasattr(rec, "status")
        ]

    await eventually(lines, what=f"the end line of {turn_id}")
    await asyncio.sleep(0.2)  # and no second one
    return lines()


class TestTurnEndLog:
    async def test_a_completed_turn_logs_its_figures(
        self, client: httpx.AsyncClient, member: Member, caplog: pytest.LogCaptureFixture
    ) -> None:
        worker_id = await new_worker_id(client, member)
        with caplog.at_level(logging.INFO, logger="kennel.tasks"):
            r = await post_task(client, member, input="Count the dogs", workerId=worker_id)
            assert r.status_code == 200, r.text
            turn_id = r.headers["x-kennel-turn-id"]
            # The answer comes once the end is committed; the line once DBOS has recorded it.
            (line,) = await _end_lines(caplog, turn_id)
        assert line.levelno == logging.INFO
        assert line.status == "completed"  # type: ignore[attr-defined]
        assert line.requests >= 1  # type: ignore[attr-defined]
        assert line.outputTokens > 0  # type: ignore[attr-defined]
        assert line.durationMs >= 0  # type: ignore[attr-defined]

    async def test_a_failed_turn_logs_a_warning_with_code_and_message(
        self,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        reconfigure(
            model=FunctionModel(
                rate_limited, stream_function=rate_limited_stream, model_name="limited"
            )
        )
        worker_id = await new_worker_id(client, member)
        with caplog.at_level(logging.INFO, logger="kennel.tasks"):
            r = await post_task(client, member, input="Count the dogs", workerId=worker_id)
            assert r.status_code == 200, r.text
            assert r.json()["error"] == {
                "code": "model_rate_limited",
                "message": "The model provider is limiting requests: HTTP 429: Rate limit reached",
            }
            (line,) = await _end_lines(caplog, r.headers["x-kennel-turn-id"])
        assert line.levelno == logging.WARNING
        assert line.code == "model_rate_limited"  # type: ignore[attr-defined]
        assert "Rate limit reached" in line.getMessage()
