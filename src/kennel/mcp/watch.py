"""`notifications/tools/list_changed`: a session is told when its caller's tools change.

Workers are created and deleted through the REST API, the dashboard or another server process,
none of which knows about MCP sessions; so each session that has listed its tools is looked at
again every `KENNEL_MCP_TOOLS_POLL_SECONDS`, one query per caller, and told when the list it
would get now differs from the one it got. The notification goes out on the session's
standalone stream (the client's GET), which is where the transport allows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

import mcp_types as types
from mcp.server.session import ServerSession

from kennel.auth import Caller

__all__ = ["ToolWatch", "signature"]

log = logging.getLogger("kennel.mcp")

ListTools = Callable[[Caller], Awaitable[list[types.Tool]]]


def signature(tools: Sequence[types.Tool]) -> str:
    """What a client would see of the tools: names, descriptions, schemas."""
    document = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


@dataclass(slots=True)
class _Watched:
    caller: Caller
    session: ServerSession
    signature: str
    seen_at: float


class ToolWatch:
    """The sessions that listed their tools, by MCP session id, and the loop that tells them."""

    def __init__(self, list_tools: ListTools, *, poll_seconds: float, forget_after: float) -> None:
        self._list_tools = list_tools
        self.poll_seconds = poll_seconds
        # The SDK ends a session idle that long: no request in flight, no stream open.
        self.forget_after = forget_after
        self._sessions: dict[str, _Watched] = {}
        self._streams: Counter[str] = Counter()  # the standalone (GET) streams open, by session

    def listed(
        self, session_id: str, caller: Caller, session: ServerSession, tools: Sequence[types.Tool]
    ) -> None:
        """The session got `tools`: the list to compare with from now on."""
        self._sessions[session_id] = _Watched(caller, session, signature(tools), time.monotonic())

    def touched(self, session_id: str, caller: Caller, *, ended: bool = False) -> None:
        """A request of the session came in (its last, when `ended`); another key's is not
        the session's (the SDK refuses it)."""
        watched = self._sessions.get(session_id)
        if watched is None or watched.caller != caller:
            return
        if ended:
            self.forget(session_id)
        else:
            watched.seen_at = time.monotonic()

    def forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    @contextlib.contextmanager
    def streaming(self, session_id: str, caller: Caller) -> Iterator[None]:
        """A GET stream of the session is open: a client may listen for hours, asking nothing."""
        self._streams[session_id] += 1
        try:
            yield
        finally:
            self._streams[session_id] -= 1
            if self._streams[session_id] <= 0:
                del self._streams[session_id]
            self.touched(session_id, caller)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.check()
            except Exception:
                log.exception("looking for changed MCP tool lists failed")

    async def check(self) -> None:
        """Tell each session whose tools changed since it listed them, once."""
        now = time.monotonic()
        by_caller: dict[Caller, str] = {}
        for session_id, watched in list(self._sessions.items()):
            if session_id not in self._streams and now - watched.seen_at > self.forget_after:
                self.forget(session_id)
                continue
            if watched.caller not in by_caller:
                by_caller[watched.caller] = signature(await self._list_tools(watched.caller))
            current = by_caller[watched.caller]
            if current == watched.signature:
                continue
            watched.signature = current
            try:
                await watched.session.send_tool_list_changed()
            except Exception as exc:  # the session ended under us
                log.info("MCP session %s not told of its tools: %r", session_id[:8], exc)
                self.forget(session_id)
