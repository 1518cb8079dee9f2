"""A task's conversation (Vercel AI SDK UI messages) as what the worker page shows of it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Entry", "Item", "conversation"]


@dataclass(frozen=True, slots=True)
class Item:
    kind: str  # "text", "tool" or "other"
    text: str = ""
    tool: str = ""
    state: str = ""
    input: str = ""
    output: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    role: str
    items: list[Item] = field(default_factory=list)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _item(part: dict[str, Any]) -> Item | None:
    kind = str(part.get("type", ""))
    if kind in ("text", "reasoning"):
        return Item("text", text=str(part.get("text", "")))
    if kind.startswith("tool-") or kind == "dynamic-tool":
        name = kind.removeprefix("tool-") if kind != "dynamic-tool" else str(part.get("toolName"))
        output = (
            part.get("errorText") if part.get("state") == "output-error" else part.get("output")
        )
        return Item(
            "tool",
            tool=name,
            state=str(part.get("state", "")),
            input=_as_text(part.get("input")),
            output=_as_text(output),
        )
    if kind in ("step-start", ""):
        return None
    return Item("other", text=kind)


def conversation(messages: list[dict[str, Any]]) -> list[Entry]:
    """The user's inputs, the model's text and its tool calls (input and output), in order."""
    entries: list[Entry] = []
    for message in messages:
        items = [item for part in message.get("parts", []) if (item := _item(part)) is not None]
        if items:
            entries.append(Entry(str(message.get("role", "assistant")), items))
    return entries
