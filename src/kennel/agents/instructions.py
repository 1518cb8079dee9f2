"""Turn a user's prompt into a worker's persistent instructions with an LLM."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_ai import Agent
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import UsageLimits

from kennel.core.causes import causes

__all__ = ["ModelError", "WrittenInstructions", "write_worker_instructions"]

MAX_INSTRUCTIONS = 20_000
MAX_SUMMARY = 80
DEFAULT_TIMEOUT_SECONDS = 120.0

_SYSTEM = """\
You write the persistent instructions for an AI agent worker.
The user describes what the worker should do. Write `instructions`: a self-contained brief, \
addressed to the worker as "you", that it will follow on every run: its goal, the steps and \
checks to perform, what to produce and in which format, and the constraints the user stated.
Keep every concrete detail the user gave (names, URLs, schedules, formats, recipients).
Do not invent facts, credentials or tools. Be concise: plain text or light Markdown."""

_SUMMARY = f"""
Also write `summary`: a short title for the worker, at most {MAX_SUMMARY} characters, \
no trailing period."""


class WrittenInstructions(BaseModel):
    """Instructions for a worker, and optionally a short summary of it."""

    instructions: str = Field(max_length=MAX_INSTRUCTIONS)
    summary: str | None = Field(default=None, max_length=MAX_SUMMARY)


class _Instructions(BaseModel):
    instructions: str = Field(min_length=1, max_length=MAX_INSTRUCTIONS)


class _InstructionsWithSummary(_Instructions):
    summary: str = Field(min_length=1, max_length=MAX_SUMMARY)


class ModelError(Exception):
    """The model or its provider failed; `.message` carries the provider's own words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_plain_agent = Agent(output_type=_Instructions, instructions=_SYSTEM, name="instructions")
_summary_agent = Agent(
    output_type=_InstructionsWithSummary, instructions=_SYSTEM + _SUMMARY, name="instructions"
)


async def write_worker_instructions(
    model: Model,
    prompt: str,
    *,
    want_summary: bool,
    model_settings: ModelSettings | None = None,
) -> WrittenInstructions:
    """Ask `model` for a worker's instructions (and summary); raise `ModelError` on any failure."""
    agent = _summary_agent if want_summary else _plain_agent
    settings: ModelSettings = {"request_timeout": DEFAULT_TIMEOUT_SECONDS, **(model_settings or {})}
    try:
        result = await agent.run(
            prompt,
            model=model,
            model_settings=settings,
            usage_limits=UsageLimits(request_limit=3),
        )
    # Whatever the provider, SDK or transport raised, the API answers 502 with its message.
    except Exception as exc:
        raise ModelError(describe_error(exc)) from exc
    output = result.output
    summary = output.summary if isinstance(output, _InstructionsWithSummary) else None
    return WrittenInstructions(instructions=output.instructions, summary=summary)


def describe_error(exc: BaseException) -> str:
    """One line: the error, then each distinct underlying cause (SDK, transport)."""
    seen: list[str] = []
    for node in causes(exc):
        text = " ".join(str(node).split())
        if text and not any(text in earlier for earlier in seen):
            seen.append(f"{type(node).__name__}: {text}")
        if len(seen) == 4:
            break
    return " <- ".join(seen) or type(exc).__name__
