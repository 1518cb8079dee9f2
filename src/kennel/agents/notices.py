"""What a turn's reader should know that the answer does not say.

A model without tool calling (many small local ones) answers a task that needed a page, a
search or a file as if it had them, inventing what they would have said. Nothing in the
answer shows it, so the turn says so: a notice is stored with the turn, sent in its stream
as a `data-notice` chunk, and shown in the `Worker` object's `metadata.notices`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import CustomEvent, ModelMessage, ModelResponse, ToolCallPart

from kennel.agents.offline_model import SEARCH_RE, URL_RE, WRITE_RE

__all__ = ["TurnNotice", "cut_off_notices", "unused_tool_notices"]


@dataclass(kw_only=True)
class TurnNotice(CustomEvent, name="notice"):
    """`{"type": "data-notice", "data": {"code", "message"}}` in a turn's stream."""

    code: str
    message: str

    def to_payload(self) -> Any:
        return {"code": self.code, "message": self.message}


# What a prompt asks for, the tool that does it, and how the notice puts it.
_NEEDS = (
    (URL_RE, "web_fetch", "it names a web page"),
    (SEARCH_RE, "web_search", "it asks for a web search"),
    (WRITE_RE, "write_file", "it asks for a file to be written"),
)


def unused_tool_notices(
    prompt: str, messages: Sequence[ModelMessage], offered: Collection[str]
) -> list[dict[str, str]]:
    """A `tool_not_used` notice for each tool the prompt plainly needed, that the turn offered,
    and that the model never called."""
    called = {
        part.tool_name
        for message in messages
        if isinstance(message, ModelResponse)
        for part in message.parts
        if isinstance(part, ToolCallPart)
    }
    notices = []
    for pattern, tool, why in _NEEDS:
        if tool in offered and tool not in called and pattern.search(prompt):
            notices.append(
                {
                    "code": "tool_not_used",
                    "message": (
                        f"The model did not call {tool} although {why}: its answer may be made"
                        " up. A model that cannot call tools cannot do this (see the README's"
                        " Models section)."
                    ),
                }
            )
    return notices


def cut_off_notices(
    messages: Sequence[ModelMessage], budget: str, output_tokens: int | None
) -> list[dict[str, str]]:
    """An `output_cut_off` notice when a response stopped at the output cap (`max_tokens`)."""
    if not any(isinstance(m, ModelResponse) and m.finish_reason == "length" for m in messages):
        return []
    limit = f" of {output_tokens:,} output tokens a request" if output_tokens else ""
    return [
        {
            "code": "output_cut_off",
            "message": (
                f"The answer was cut off at the {budget!r} budget's limit{limit}: a larger"
                " budget allows a longer one."
            ),
        }
    ]
