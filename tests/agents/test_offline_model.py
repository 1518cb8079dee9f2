"""Behaviour of the offline model through real pydantic-ai agents."""

from __future__ import annotations

import time

import pytest
from jsonschema import Draft7Validator
from pydantic import BaseModel, Field
from pydantic_ai import Agent, ModelRetry, NativeOutput
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    ModelMessage,
    ModelResponse,
    PartDeltaEvent,
    TextPartDelta,
    ToolCallPart,
)
from pydantic_ai.models.function import AgentInfo
from pydantic_ai.run import AgentRunResultEvent

from kennel.agents import OfflineModel


class RecordingModel(OfflineModel):
    """Offline model that keeps the `AgentInfo` of each request."""

    def __init__(self) -> None:
        super().__init__()
        self.infos: list[AgentInfo] = []

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.infos.append(info)
        return await super()._respond(messages, info)


def _text_agent() -> Agent[None, str]:
    return Agent(OfflineModel(), instructions="Be brief.")


def _fetch_agent(calls: list[str], page: str) -> Agent[None, str]:
    agent = Agent(OfflineModel())

    @agent.tool_plain
    def web_fetch(url: str) -> str:
        """Fetch a page."""
        calls.append(url)
        return page

    return agent


@pytest.mark.asyncio
async def test_text_answer_is_deterministic_and_derived_from_prompt() -> None:
    first = await _text_agent().run("Count the sheep in the north field")
    second = await _text_agent().run("Count the sheep in the north field")
    other = await _text_agent().run("Feed the dogs")
    assert first.output == second.output == "Done: Count the sheep in the north field"
    assert other.output == "Done: Feed the dogs"
    response = first.all_messages()[-1]
    assert isinstance(response, ModelResponse)
    assert response.model_name == "kennel-offline"


@pytest.mark.asyncio
async def test_usage_counts_words_and_matches_when_streamed() -> None:
    prompt = "one two three four five six seven"
    result = await _text_agent().run(prompt)
    # "Be brief." (2) + seven prompt words in; "Done: ..." is eight words out.
    assert (result.usage.input_tokens, result.usage.output_tokens) == (9, 8)
    async with _text_agent().run_stream(prompt) as stream:
        await stream.get_output()
    assert (stream.usage.input_tokens, stream.usage.output_tokens) == (9, 8)


@pytest.mark.asyncio
async def test_fetch_tool_called_once_per_url_then_answers_with_title() -> None:
    calls: list[str] = []
    agent = _fetch_agent(calls, "<html><head><title>Kennel Club News</title></head></html>")
    prompt = (
        "Read https://example.com/a, then https://example.org/b?x=1. Again https://example.com/a"
    )
    result = await agent.run(prompt)
    assert calls == ["https://example.com/a", "https://example.org/b?x=1"]
    assert "web_fetch: Kennel Club News" in result.output
    assert result.usage.requests == 3


@pytest.mark.asyncio
async def test_no_url_or_no_fetch_tool_means_no_tool_call() -> None:
    calls: list[str] = []
    result = await _fetch_agent(calls, "page").run("No links here, just chat")
    assert calls == []
    assert result.output == "Done: No links here, just chat"
    plain = await _text_agent().run("See https://example.com")
    assert plain.output == "Done: See https://example.com"


@pytest.mark.asyncio
async def test_fetch_args_follow_the_tool_schema() -> None:
    seen: list[tuple[str, int]] = []
    agent = Agent(OfflineModel())

    @agent.tool_plain
    def fetch_page(max_chars: int, target_url: str) -> str:
        """Fetch with a limit."""
        seen.append((target_url, max_chars))
        return "# Heading From Markdown\nbody"

    result = await agent.run("summarise http://intranet.local/page")
    assert [url for url, _ in seen] == ["http://intranet.local/page"]
    assert isinstance(seen[0][1], int)
    assert "fetch_page: Heading From Markdown" in result.output


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("prompt", "path", "content"),
    [
        ("Please write a file named report.md containing Hello there", "report.md", "Hello there"),
        ("write file called notes.txt with content: a b c", "notes.txt", "a b c"),
        ("Save the summary to out/summary.txt", "out/summary.txt", None),
    ],
)
async def test_write_file_tool_called_with_name_and_content(
    prompt: str, path: str, content: str | None
) -> None:
    written: list[tuple[str, str]] = []
    agent = Agent(OfflineModel())

    @agent.tool_plain
    def write_file(path: str, content: str) -> str:
        """Write a file."""
        written.append((path, content))
        return f"wrote {len(content)} bytes"

    result = await agent.run(prompt)
    assert len(written) == 1
    assert written[0][0] == path
    expected = content if content is not None else f"Written by kennel-offline: {prompt}"
    assert written[0][1] == expected
    assert f"write_file: wrote {len(expected)} bytes" in result.output


@pytest.mark.asyncio
async def test_fetch_then_write_in_one_turn() -> None:
    order: list[str] = []
    agent = Agent(OfflineModel())

    @agent.tool_plain
    def web_fetch(url: str) -> str:
        """Fetch."""
        order.append(f"fetch {url}")
        return "<title>T</title>"

    @agent.tool_plain
    def write_file(filename: str, text: str) -> str:
        """Write."""
        order.append(f"write {filename} {text}")
        return "ok"

    await agent.run("Fetch https://example.com and save it to page.html")
    assert order[0] == "fetch https://example.com"
    assert order[1].startswith("write page.html Written by kennel-offline: Fetch")
    assert len(order) == 2


@pytest.mark.asyncio
async def test_multi_turn_history_uses_the_latest_prompt() -> None:
    calls: list[str] = []
    agent = _fetch_agent(calls, "<title>Page</title>")
    first = await agent.run("open https://example.com/1")
    second = await agent.run("now https://example.com/2", message_history=first.all_messages())
    assert calls == ["https://example.com/1", "https://example.com/2"]
    assert second.output.startswith("Done: now https://example.com/2")


class Address(BaseModel):
    street: str = Field(max_length=12)
    zip_code: int = Field(ge=10000, le=99999)


class Person(BaseModel):
    name: str = Field(min_length=3, max_length=8)
    role: str = Field(json_schema_extra={"enum": ["owner", "walker"]})
    age: int = Field(gt=17, lt=21)
    home: Address
    pets: list[str] = Field(min_length=3)
    nickname: str | None = None


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


@pytest.mark.asyncio
@pytest.mark.parametrize("output_type", [Person, Address, Tree, list[int], bool])
async def test_structured_output_tool_args_validate(output_type: type) -> None:
    model = RecordingModel()
    agent = Agent(model, output_type=output_type)
    prompt = "Describe the new dog walker who joined this week"
    first = await agent.run(prompt)
    again = await agent.run(prompt)
    assert first.output == again.output
    response = first.all_messages()[1]
    assert isinstance(response, ModelResponse)
    [call] = response.parts
    assert isinstance(call, ToolCallPart)
    [tool] = model.infos[0].output_tools
    assert tool.name == call.tool_name
    schema = tool.parameters_json_schema
    Draft7Validator.check_schema(schema)
    assert list(Draft7Validator(schema).iter_errors(call.args_as_dict())) == []
    assert first.usage.requests == 1


@pytest.mark.asyncio
async def test_structured_output_strings_come_from_the_prompt() -> None:
    result = await Agent(OfflineModel(), output_type=Person).run("Rex the terrier")
    person = result.output
    assert person.name == "Rex the"  # cut at a word boundary within maxLength 8
    assert person.role == "owner"
    assert person.age in (18, 19, 20)
    assert len(person.pets) >= 3
    assert len(set(person.pets)) == len(person.pets)
    assert 10000 <= person.home.zip_code <= 99999


@pytest.mark.asyncio
async def test_native_output_is_json_text() -> None:
    agent = Agent(OfflineModel(), output_type=NativeOutput(Address))
    result = await agent.run("Baker Street 221b")
    assert result.output == Address(street="Baker Street", zip_code=10000)


@pytest.mark.asyncio
async def test_retry_after_invalid_output_repeats_deterministically() -> None:
    agent = Agent(OfflineModel(), output_type=Address, retries={"output": 2})
    seen: list[Address] = []

    @agent.output_validator
    def reject_first(output: Address) -> Address:
        seen.append(output)
        if len(seen) == 1:
            raise ModelRetry("try again please")
        return output

    result = await agent.run("Elm Road")
    assert seen == [Address(street="Elm Road", zip_code=10000)] * 2
    assert result.usage.requests == 2


@pytest.mark.asyncio
async def test_text_retry_ignores_the_feedback_and_answers_the_prompt() -> None:
    agent = Agent(OfflineModel(), retries={"output": 2})
    seen: list[str] = []

    @agent.output_validator
    def reject_first(output: str) -> str:
        seen.append(output)
        if len(seen) == 1:
            raise ModelRetry("not good enough")
        return output

    result = await agent.run("walk the dog")
    assert seen == ["Done: walk the dog", "Done: walk the dog"]
    assert result.output == "Done: walk the dog"


@pytest.mark.asyncio
async def test_stream_text_arrives_in_several_chunks() -> None:
    prompt = "please summarise the whole week of kennel activity for me"
    async with _text_agent().run_stream(prompt) as stream:
        chunks = [c async for c in stream.stream_text(delta=True, debounce_by=None)]
    assert len(chunks) > 2
    assert "".join(chunks) == f"Done: {prompt}"


@pytest.mark.asyncio
async def test_stream_events_show_tool_call_and_chunked_answer() -> None:
    calls: list[str] = []
    agent = _fetch_agent(calls, "<title>Stream Page</title>")
    events = []
    async with agent.run_stream_events("look at https://example.com/s please") as stream:
        async for event in stream:
            events.append(event)
    assert calls == ["https://example.com/s"]
    tool_events = [e for e in events if isinstance(e, FunctionToolCallEvent)]
    assert [e.part.args_as_dict() for e in tool_events] == [{"url": "https://example.com/s"}]
    text_deltas = [
        e for e in events if isinstance(e, PartDeltaEvent) and isinstance(e.delta, TextPartDelta)
    ]
    assert len(text_deltas) >= 2
    [final] = [e for e in events if isinstance(e, AgentRunResultEvent)]
    assert "web_fetch: Stream Page" in final.result.output


@pytest.mark.asyncio
async def test_streamed_structured_output_validates() -> None:
    agent = Agent(OfflineModel(), output_type=Person)
    async with agent.run_stream("Bella the beagle") as stream:
        person = await stream.get_output()
    assert person.name == "Bella"
    assert person.home.street == "Bella the"


@pytest.mark.asyncio
async def test_delay_slows_each_response() -> None:
    agent = Agent(OfflineModel(delay_seconds=0.15))
    start = time.monotonic()
    await agent.run("slow please")
    assert time.monotonic() - start >= 0.15


@pytest.mark.asyncio
async def test_delay_applies_between_stream_chunks() -> None:
    agent = Agent(OfflineModel(delay_seconds=0.05))
    prompt = "a b c d e f g h i j k"  # "Done: a ... k" is 12 words: 4 chunks of 3
    start = time.monotonic()
    async with agent.run_stream(prompt) as stream:
        chunks = [c async for c in stream.stream_text(delta=True, debounce_by=None)]
    assert len(chunks) == 4
    # one delay before the response and one between each pair of chunks
    assert time.monotonic() - start >= 0.05 * 4


def test_the_built_in_tools_are_the_agents_own() -> None:
    """BUILT_IN_TOOLS (what the offline model and the turn's notices know as built in) names
    exactly the tools the turn agent registers."""
    from kennel.agents.agent import turn_agent
    from kennel.agents.tools import BUILT_IN_TOOLS

    registered = {name for toolset in turn_agent.toolsets for name in getattr(toolset, "tools", {})}
    assert registered == BUILT_IN_TOOLS
