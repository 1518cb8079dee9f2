"""`write_worker_instructions` with the offline model and with failing providers."""

from __future__ import annotations

import time

import pytest
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from kennel.agents import ModelError, OfflineModel, WrittenInstructions, write_worker_instructions

PROMPT = "Every morning fetch https://example.com/news and email me the top five dog stories"


@pytest.mark.asyncio
async def test_offline_instructions_are_deterministic_and_mention_the_prompt() -> None:
    first = await write_worker_instructions(OfflineModel(), PROMPT, want_summary=True)
    second = await write_worker_instructions(OfflineModel(), PROMPT, want_summary=True)
    assert first == second
    assert isinstance(first, WrittenInstructions)
    assert "top five dog stories" in first.instructions
    assert first.summary is not None
    assert 0 < len(first.summary) <= 80
    assert PROMPT.startswith(first.summary)


@pytest.mark.asyncio
async def test_summary_is_none_when_not_wanted() -> None:
    result = await write_worker_instructions(OfflineModel(), PROMPT, want_summary=False)
    assert result.summary is None
    assert "dog stories" in result.instructions


@pytest.mark.asyncio
async def test_long_prompt_is_capped() -> None:
    prompt = "bark " * 6000
    result = await write_worker_instructions(OfflineModel(), prompt, want_summary=True)
    assert 10_000 < len(result.instructions) <= 20_000
    assert result.summary is not None
    assert len(result.summary) <= 80


@pytest.mark.asyncio
async def test_provider_http_error_becomes_model_error_with_its_message() -> None:
    def fail(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ModelHTTPError(429, "gpt-x", body={"error": "quota exhausted for org-123"})

    with pytest.raises(ModelError) as info:
        await write_worker_instructions(FunctionModel(fail), PROMPT, want_summary=True)
    assert "quota exhausted for org-123" in info.value.message
    assert "429" in info.value.message


@pytest.mark.asyncio
async def test_arbitrary_model_failure_becomes_model_error() -> None:
    def fail(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise RuntimeError("socket melted")

    with pytest.raises(ModelError) as info:
        await write_worker_instructions(FunctionModel(fail), PROMPT, want_summary=False)
    assert "socket melted" in info.value.message


@pytest.mark.asyncio
async def test_model_that_never_returns_valid_output_is_bounded() -> None:
    calls: list[int] = []

    def chatter(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(1)
        return ModelResponse(parts=[TextPart("I would rather chat")])

    with pytest.raises(ModelError) as info:
        await write_worker_instructions(FunctionModel(chatter), PROMPT, want_summary=True)
    assert info.value.message
    assert 1 < len(calls) <= 3


@pytest.mark.asyncio
async def test_unreachable_openai_server_fails_fast() -> None:
    provider = OpenAIProvider(base_url="http://127.0.0.1:9/v1", api_key="x")
    model = OpenAIChatModel("gpt-4.1", provider=provider)
    start = time.monotonic()
    with pytest.raises(ModelError) as info:
        await write_worker_instructions(
            model, PROMPT, want_summary=True, model_settings={"max_retries": 0, "timeout": 5}
        )
    assert time.monotonic() - start < 10
    message = info.value.message.lower()
    assert "connect" in message
