"""Trimming the quoted history from the text of a reply, so a follow-up turn reads only what is new.

Simple on purpose: the task already holds the earlier turns, so cutting too much costs little
and a trimmed reply that would be empty keeps its whole text instead.

| a line that starts the history | cut |
| --- | --- |
| `On <date>, <name> wrote:`, on one line or wrapped onto two | it and all after |
| the same as `Am <date> schrieb <name>:` and `Le <date>, <name> a écrit :` | it and all after |
| Outlook's `-----Original Message-----` | it and all after |
| Outlook's `From: ...` right above `Sent:`/`Date:` (with a `____` rule above) | it and all after |

and every line starting with `>`.
"""

from __future__ import annotations

import re

__all__ = ["trim_quoted"]

_ATTRIBUTION_START = re.compile(r"^\s*(On|Am|Le)\s", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r"(wrote\s?|a écrit\s?|schrieb\b.*):\s*$", re.IGNORECASE)
_ORIGINAL = re.compile(r"^\s*-{3,}\s*Original Message\s*-{3,}\s*$", re.IGNORECASE)
_HEADER_FROM = re.compile(r"^\s*\*?From:\*?\s", re.IGNORECASE)
_HEADER_NEXT = re.compile(r"^\s*\*?(Sent|Date):\*?\s", re.IGNORECASE)
_RULE = re.compile(r"^\s*_{10,}\s*$")


def trim_quoted(text: str) -> str:
    """`text` without the quoted history of the message it answers."""
    lines = text.split("\n")
    end = _history_start(lines)
    kept = [line for line in lines[:end] if not line.lstrip().startswith(">")]
    trimmed = "\n".join(kept).strip()
    return trimmed or text.strip()


def _history_start(lines: list[str]) -> int:
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if _ATTRIBUTION_START.match(line) and (
            _ATTRIBUTION_END.search(line) or _ATTRIBUTION_END.search(following)
        ):
            return i
        if _ORIGINAL.match(line):
            return i
        if _HEADER_FROM.match(line) and _HEADER_NEXT.match(following):
            return i - 1 if i and _RULE.match(lines[i - 1]) else i
    return len(lines)
