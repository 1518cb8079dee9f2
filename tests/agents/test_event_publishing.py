"""Live events go to the turn's DBOS stream in batches: one write at a time, none lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kennel.agents import agent
from kennel.agents.agent import EVENTS_STREAM, _BatchingPublisher


class SlowStream:
    """Stands in for `DBOS.write_stream_async`: each write takes a while, like a transaction."""

    def __init__(self, delay: float = 0.01, fail_on: int | None = None) -> None:
        self.delay = delay
        self.fail_on = fail_on
        self.items: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def write(self, key: str, value: dict[str, Any]) -> None:
        assert key == EVENTS_STREAM
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if self.fail_on is not None and len(self.items) == self.fail_on:
                raise RuntimeError("write refused")
            self.items.append(value)
        finally:
            self.in_flight -= 1


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> SlowStream:
    slow = SlowStream()
    monkeypatch.setattr(agent.DBOS, "write_stream_async", slow.write)
    return slow


async def test_events_that_come_during_a_write_go_together_in_the_next(
    stream: SlowStream,
) -> None:
    publisher = _BatchingPublisher(step=4, linger=0)
    for i in range(10):
        publisher.add(f"e{i}")
        await asyncio.sleep(0)  # a model stream lets the loop run between events
    await publisher.flush()

    # The first event goes out alone and at once; the nine that came meanwhile, in one write.
    assert stream.items == [
        {"s": 4, "n": 0, "e": ["e0"]},
        {"s": 4, "n": 1, "e": [f"e{i}" for i in range(1, 10)]},
    ]
    assert stream.max_in_flight == 1


async def test_a_quiet_spell_writes_each_event_without_waiting(stream: SlowStream) -> None:
    publisher = _BatchingPublisher(step=2, linger=0)
    for i in range(3):
        publisher.add(f"e{i}")
        await asyncio.sleep(stream.delay * 3)  # the previous write has ended
        assert [item["e"] for item in stream.items][-1] == [f"e{i}"]
    await publisher.flush()
    assert [(item["n"], item["e"]) for item in stream.items] == [
        (0, ["e0"]),
        (1, ["e1"]),
        (2, ["e2"]),
    ]


async def test_a_failed_write_is_raised_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    failing = SlowStream(fail_on=1)
    monkeypatch.setattr(agent.DBOS, "write_stream_async", failing.write)
    publisher = _BatchingPublisher(step=1, linger=0)
    publisher.add("e0")
    await asyncio.sleep(failing.delay * 3)
    publisher.add("e1")
    with pytest.raises(RuntimeError, match="write refused"):
        await publisher.flush()


async def test_events_close_together_go_in_one_write_and_flush_cuts_the_linger_short(
    stream: SlowStream,
) -> None:
    publisher = _BatchingPublisher(step=3, linger=60.0)  # longer than any test may wait
    for i in range(5):
        publisher.add(f"e{i}")
        await asyncio.sleep(stream.delay)  # several writes' time apart, yet within the linger
    assert stream.items == []  # still gathering
    await asyncio.wait_for(publisher.flush(), timeout=10)
    assert stream.items == [{"s": 3, "n": 0, "e": [f"e{i}" for i in range(5)]}]


async def test_a_quiet_publisher_writes_after_its_linger(stream: SlowStream) -> None:
    publisher = _BatchingPublisher(step=1, linger=0.01)
    publisher.add("e0")
    for _ in range(500):  # the write comes without a flush
        if stream.items:
            break
        await asyncio.sleep(0.01)
    assert stream.items == [{"s": 1, "n": 0, "e": ["e0"]}]
    await publisher.flush()
