"""Deterministic keyless model: answers, calls fetch/write tools and fills structured output."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic_ai.messages import (
    InstructionPart,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    SystemPromptPart,
    TextContent,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RequestUsage

from kennel.agents.schema_sample import sample_from_schema
from kennel.agents.tools import BUILT_IN_TOOLS

__all__ = ["OFFLINE_MODEL_NAME", "OfflineModel", "sample_from_schema"]

OFFLINE_MODEL_NAME = "kennel-offline"

SEARCH_RE = re.compile(r"\bsearch (?:the web )?for (?P<query>[^.?!\n]{1,200})", re.IGNORECASE)
URL_RE = re.compile(r"https?://[^\s<>\"'`)\]}]+")
# "write a file named notes.txt", "save the summary to out/report.md", "create file todo.md";
# the file name must carry an extension so ordinary prose is not mistaken for a path.
WRITE_RE = re.compile(
    r"\b(?:write|save|create|store)\b[^\n]*?\b(?:file\s+(?:named\s+|called\s+)?|to\s+|as\s+|into\s+)"
    r"[\"'`]?(?P<name>[\w][\w./-]*\.[A-Za-z0-9]{1,8})\b",
    re.IGNORECASE,
)
# "read the file notes.txt", "read in/data.csv": the same rule for the name.
READ_RE = re.compile(
    r"\bread\b\s+(?:the\s+)?(?:file\s+(?:named\s+|called\s+)?)?"
    r"[\"'`]?(?P<name>[\w][\w./-]*\.[A-Za-z0-9]{1,8})\b",
    re.IGNORECASE,
)
# Optional explicit content: "... containing hello world" / "with content: hi" / "saying hi".
CONTENT_RE = re.compile(
    r"\b(?:containing|with (?:the )?(?:content|text)|saying)\s*:?\s*"
    r"[\"'`]?(?P<content>.+?)[\"'`]?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_TITLE_RES = (
    re.compile(r"<title[^>]*>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL),
    re.compile(r"^\s*#{1,6}\s+(.+?)\s*$", re.MULTILINE),
    re.compile(r'"title"\s*:\s*"([^"]+)"'),
)
_TOKEN_SPLIT = re.compile(r"[\s\",.:]+")  # the split pydantic-ai test models use, minus empties
_WORDS_PER_CHUNK = 3


class OfflineModel(FunctionModel):
    """Keyless deterministic `FunctionModel` with an optional per-response delay."""

    def __init__(
        self,
        *,
        delay_seconds: float = 0.0,
        model_name: str = OFFLINE_MODEL_NAME,
        trace_file: Path | None = None,
    ) -> None:
        self.delay_seconds = delay_seconds
        # One line per request answered, so tests can count requests across processes.
        self.trace_file = trace_file
        super().__init__(self._respond, stream_function=self._stream, model_name=model_name)

    def _trace(self, messages: list[ModelMessage]) -> None:
        if self.trace_file is not None:
            prompt, _ = latest_prompt(messages)
            with self.trace_file.open("a") as trace:
                trace.write(json.dumps({"pid": os.getpid(), "prompt": prompt}) + "\n")

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self._trace(messages)
        await self._pause()
        parts = plan_response(messages, info)
        return ModelResponse(parts=parts, usage=estimate_usage(messages, info, parts))

    async def _stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        self._trace(messages)
        await self._pause()
        for index, part in enumerate(plan_response(messages, info)):
            if isinstance(part, TextPart):
                for i, chunk in enumerate(text_chunks(part.content)):
                    if i:
                        await self._pause()
                    yield chunk
            elif isinstance(part, ToolCallPart):
                args = part.args_as_json_str()
                half = len(args) // 2
                first = DeltaToolCall(part.tool_name, args[:half], tool_call_id=part.tool_call_id)
                yield {index: first}
                await self._pause()
                yield {index: DeltaToolCall(json_args=args[half:])}

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncGenerator[StreamedResponse]:
        async with super().request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as streamed:
            # FunctionModel streams report a flat 50 input tokens; count what was sent instead.
            _, params = self.prepare_request(model_settings, model_request_parameters)
            instructions = InstructionPart.join(params.instruction_parts or [])
            streamed._usage = RequestUsage(input_tokens=input_tokens(messages, instructions))
            yield streamed

    async def _pause(self) -> None:
        if self.delay_seconds > 0:
            await asyncio.sleep(self.delay_seconds)


def plan_response(messages: Sequence[ModelMessage], info: AgentInfo) -> list[ModelResponsePart]:
    """Decide the next response: a pending tool call, structured output, or a text answer."""
    prompt, start = latest_prompt(messages)
    turn = list(messages[start:])
    call_id = f"offline_{sum(isinstance(m, ModelResponse) for m in messages)}"
    done = [
        (p.tool_name, p.args_as_dict())
        for m in turn
        if isinstance(m, ModelResponse)
        for p in m.parts
        if isinstance(p, ToolCallPart)
    ]
    for name, args in planned_tool_calls(prompt, info.function_tools):
        if (name, args) not in done:
            return [ToolCallPart(name, args, tool_call_id=call_id)]
    if info.output_tools:
        tool = info.output_tools[0]
        args = sample_from_schema(tool.parameters_json_schema, prompt)
        return [ToolCallPart(tool.name, args, tool_call_id=call_id)]
    params = info.model_request_parameters
    if params.output_mode in ("native", "prompted") and params.output_object is not None:
        return [TextPart(json.dumps(sample_from_schema(params.output_object.json_schema, prompt)))]
    return [TextPart(answer_text(prompt, turn))]


def latest_prompt(messages: Sequence[ModelMessage]) -> tuple[str, int]:
    """Return the newest genuine user prompt text and the index of its request."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, ModelRequest):
            continue
        texts = [
            text
            for part in message.parts
            if type(part) is UserPromptPart  # subclasses are framework notes, not the user
            and (text := content_text(part.content))
            and not is_framework_text(text)
        ]
        if texts:
            return "\n".join(texts), index
    return "", 0


def is_framework_text(text: str) -> bool:
    """Whether a user-voice part is pydantic-ai retry feedback or a `<system>` block."""
    head = text.lstrip()[:200]
    return head.startswith("<system") or "<pyai:" in text or "this is automated feedback" in head


def content_text(content: str | Sequence[Any]) -> str:
    """Join the textual pieces of a user prompt."""
    if isinstance(content, str):
        return content.strip()
    pieces = [
        c.content if isinstance(c, TextContent) else c
        for c in content
        if isinstance(c, str | TextContent)
    ]
    return "\n".join(p.strip() for p in pieces if p.strip())


ToolCallPlan = tuple[str, dict[str, Any]]


def planned_tool_calls(prompt: str, tools: Sequence[ToolDefinition]) -> list[ToolCallPlan]:
    """Tool calls the prompt asks for, in order: search for what it says ("search the web for
    ..."), fetch each URL, read and write the named files, then any other tool the prompt
    names."""
    calls: list[ToolCallPlan] = []
    search = next((t for t in tools if "search" in t.name.lower()), None)
    if search and (asked := SEARCH_RE.search(prompt)):
        calls.append((search.name, fill_args(search, prompt, {_is_query_prop: asked["query"]})))
    if fetch := next((t for t in tools if "fetch" in t.name.lower()), None):
        for url in dict.fromkeys(u.rstrip(".,;:!?") for u in URL_RE.findall(prompt)):
            calls.append((fetch.name, fill_args(fetch, prompt, {_is_url_prop: url})))
    read = next((t for t in tools if t.name.lower() == "read_file"), None)
    if read and (asked := READ_RE.search(prompt)):
        calls.append((read.name, fill_args(read, prompt, {_is_path_prop: asked["name"]})))
    write = next((t for t in tools if "write" in t.name.lower()), None)
    if write and (match := WRITE_RE.search(prompt)):
        found = CONTENT_RE.search(prompt[match.end() :])
        content = found.group("content") if found else f"Written by {OFFLINE_MODEL_NAME}: {prompt}"
        values = {_is_path_prop: match.group("name"), _is_content_prop: content}
        calls.append((write.name, fill_args(write, prompt, values)))
    # Any other tool (an MCP server's) is called when the prompt names it, as `server__tool`.
    for tool in tools:
        if tool.name not in BUILT_IN_TOOLS and re.search(rf"\b{re.escape(tool.name)}\b", prompt):
            calls.append((tool.name, fill_args(tool, prompt, {})))
    return calls


def _is_query_prop(name: str) -> bool:
    return name in ("query", "q", "terms", "search")


def _is_url_prop(name: str) -> bool:
    return "url" in name or name in ("uri", "href", "link", "address")


def _is_path_prop(name: str) -> bool:
    return any(word in name for word in ("path", "file", "name"))


def _is_content_prop(name: str) -> bool:
    return name in ("content", "contents", "text", "data", "body") or "content" in name


def fill_args(tool: ToolDefinition, prompt: str, values: dict[Any, str]) -> dict[str, Any]:
    """Required args sampled from the tool schema, role-matched string properties overridden."""
    schema = tool.parameters_json_schema
    args: dict[str, Any] = sample_from_schema(schema, prompt, fill_optional=False)
    props = schema.get("properties", {})
    for matches, value in values.items():
        name = next((n for n in props if matches(n.lower()) and _accepts_string(props[n])), None)
        if name is None:  # fall back to the first required string, where the value belongs
            required = [n for n in schema.get("required", []) if _accepts_string(props.get(n, {}))]
            name = next((n for n in required if n not in _taken(values, props, matches)), None)
        if name is not None:
            args[name] = value
    return args


def _taken(values: dict[Any, str], props: dict[str, Any], current: Any) -> set[str]:
    return {n for m in values if m is not current for n in props if m(n.lower())}


def _accepts_string(prop: dict[str, Any]) -> bool:
    branches = [b for b in prop.get("anyOf", []) if isinstance(b, dict)]
    kinds = [prop.get("type"), *(b.get("type") for b in branches)]
    return "string" in kinds or (isinstance(kinds[0], list) and "string" in kinds[0])


def answer_text(prompt: str, turn: Sequence[ModelMessage]) -> str:
    """The final plain-text answer, mentioning what each tool returned this turn."""
    summary = shorten(prompt, 200) or "(empty prompt)"
    lines = [f"Done: {summary}"]
    for message in turn:
        if not isinstance(message, ModelRequest):
            continue
        for part in message.parts:
            if isinstance(part, ToolReturnPart):
                result = part.model_response_str()
                status = "" if part.outcome == "success" else f" ({part.outcome})"
                lines.append(f"{part.tool_name}{status}: {shorten(page_title(result), 120)}")
    return "\n".join(lines)


def page_title(text: str) -> str:
    """The page title if the text has one, else the text itself."""
    for pattern in _TITLE_RES:
        if found := pattern.search(text):
            return found.group(1)
    return text


def shorten(text: str, limit: int) -> str:
    """Collapse whitespace and cut at a word boundary within `limit` characters."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1].rsplit(" ", 1)[0] + "…"


def text_chunks(text: str) -> list[str]:
    """Split text into groups of a few words, whitespace kept, so joining restores it."""
    words = re.findall(r"\s*\S+\s*", text) or [text]
    step = _WORDS_PER_CHUNK
    return ["".join(words[i : i + step]) for i in range(0, len(words), step)]


def count_tokens(text: str) -> int:
    """Rough token count: words split on whitespace and light punctuation."""
    return sum(1 for piece in _TOKEN_SPLIT.split(text) if piece)


def input_tokens(messages: Sequence[ModelMessage], instructions: str | None) -> int:
    """Tokens of everything sent: instructions, prompts, tool results and earlier responses."""
    total = count_tokens(instructions or "")
    for message in messages:
        for part in message.parts:
            if isinstance(part, UserPromptPart):
                total += count_tokens(content_text(part.content))
            elif isinstance(part, SystemPromptPart):
                total += count_tokens(part.content)
            elif isinstance(part, ToolReturnPart):
                total += count_tokens(part.model_response_str())
            elif isinstance(part, TextPart):
                total += count_tokens(part.content)
            elif isinstance(part, ToolCallPart):
                total += 1 + count_tokens(part.args_as_json_str())
    return max(total, 1)


def estimate_usage(
    messages: Sequence[ModelMessage], info: AgentInfo, parts: Sequence[ModelResponsePart]
) -> RequestUsage:
    """Deterministic usage: input from what was sent, output from this response only."""
    output = sum(count_tokens(p.content) for p in parts if isinstance(p, TextPart))
    output += sum(
        1 + count_tokens(p.args_as_json_str()) for p in parts if isinstance(p, ToolCallPart)
    )
    return RequestUsage(
        input_tokens=input_tokens(messages, info.instructions), output_tokens=max(output, 1)
    )
