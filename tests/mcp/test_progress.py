"""Progress notifications of a turn followed by a tool call."""

from __future__ import annotations

from pydantic_ai.messages import (
    FunctionToolCallEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
)

from kennel.mcp.progress import MESSAGE_CHARS, Progress


class Reports:
    def __init__(self) -> None:
        self.sent: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.sent.append((progress, total, message))


async def test_the_text_so_far_goes_out_with_an_increasing_progress() -> None:
    reports = Reports()
    progress = Progress(reports, interval=0)
    await progress.event(PartStartEvent(index=0, part=TextPart("Hello")))
    await progress.event(PartDeltaEvent(index=0, delta=TextPartDelta(" world")))
    await progress.flush()  # nothing new: nothing sent
    assert reports.sent == [(1, None, "Hello"), (2, None, "Hello world")]


async def test_notifications_are_spaced_and_the_last_text_is_flushed() -> None:
    reports = Reports()
    progress = Progress(reports, interval=60)
    await progress.event(PartStartEvent(index=0, part=TextPart("a")))
    for _ in range(5):
        await progress.event(PartDeltaEvent(index=0, delta=TextPartDelta("b")))
    tool = ToolCallPart("fetch_url", {"url": "https://example.com"})
    await progress.event(FunctionToolCallEvent(part=tool))  # a step: said at once
    await progress.flush()
    assert [m for _, _, m in reports.sent] == ["a", "Calling fetch_url…", "abbbbb"]
    assert [p for p, _, _ in reports.sent] == [1, 2, 3]


async def test_a_long_text_is_sent_as_its_end() -> None:
    reports = Reports()
    progress = Progress(reports, interval=0)
    await progress.event(PartStartEvent(index=0, part=TextPart("x" * MESSAGE_CHARS + "END")))
    message = reports.sent[-1][2]
    assert message is not None
    assert len(message) == MESSAGE_CHARS
    assert message.startswith("…")
    assert message.endswith("xEND")
