"""Fixtures for the webhooks tests: a stub resolver, so no test asks real DNS."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest


class StubResolver:
    """Answers from a dict the test can change between calls (DNS rebinding in one line)."""

    def __init__(self, answers: dict[str, Sequence[str]] | None = None) -> None:
        self.answers: dict[str, Sequence[str]] = dict(answers or {})
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


@pytest.fixture
def resolver() -> StubResolver:
    return StubResolver()
