"""`/mcp`: the Streamable HTTP endpoint, behind the same API keys as `/api`.

Every HTTP request is authenticated here, before the SDK sees it: a missing or unknown key is
the API's 401. The caller goes into the request's scope for the handlers, and as the SDK's
authenticated user too, so that the SDK binds each MCP session to the key that opened it: a
request with another key for that session is answered as if the session did not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import (
    DEFAULT_SESSION_IDLE_TIMEOUT,
    StreamableHTTPSessionManager,
)

from kennel.api.errors import Unauthorized, error_body
from kennel.auth.dependencies import caller_of
from kennel.core.runtime import Runtime
from kennel.mcp import calls
from kennel.mcp.server import CALLER_SCOPE_KEY, build_server
from kennel.mcp.watch import ToolWatch

__all__ = ["MCP_METHODS", "MCP_PATH", "McpDoor"]

MCP_PATH = "/mcp"
MCP_METHODS = ("GET", "POST", "DELETE")

Scope = dict[str, Any]


class McpDoor:
    """The ASGI app served at `MCP_PATH`; `running()` belongs in the app's lifespan."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.watch = ToolWatch(
            lambda caller: calls.list_tools(rt, caller),
            poll_seconds=rt.settings.mcp_tools_poll_seconds,
            forget_after=DEFAULT_SESSION_IDLE_TIMEOUT,
        )
        # No DNS-rebinding host check: a browser page cannot send the API key, and Kennel is
        # served under whatever host name its operator gives it.
        self.sessions = StreamableHTTPSessionManager(app=build_server(rt, self.watch))
        self._running = False

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve sessions (and watch their tools) until the block ends."""
        # The SDK's session manager holds an anyio task group, which must end in the task that
        # began it; an app's lifespan may begin and end in two tasks (pytest's fixtures do).
        started, stop = asyncio.Event(), asyncio.Event()

        async def serve() -> None:
            async with self.sessions.run():
                watcher = asyncio.create_task(self.watch.run(), name="mcp-tool-watch")
                started.set()
                try:
                    await stop.wait()
                finally:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher

        server = asyncio.create_task(serve(), name="mcp-sessions")
        ready = asyncio.create_task(started.wait())
        await asyncio.wait({server, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if server.done():
            server.result()  # it failed to start: say why
        self._running = True
        try:
            yield
        finally:
            self._running = False
            stop.set()
            await server

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if not self._running:
            await _send_error(send, 503, "The MCP endpoint is starting or stopping.")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            # The app's cache of recently verified keys, shared with `/api`.
            verified = scope["app"].state.verified_keys
            caller = await caller_of(self.rt.db, headers.get("authorization"), verified)
        except Unauthorized as exc:
            await _send_error(send, 401, exc.message, {"www-authenticate": "Bearer"})
            return
        scope.setdefault("state", {})["caller_user_id"] = caller.user_id  # for the access log
        token = AccessToken(
            token="",  # not kept: the key was checked above, the SDK only compares principals
            client_id=caller.key_id,
            scopes=[],
            subject=caller.user_id,
        )
        scope = {**scope, CALLER_SCOPE_KEY: caller, "user": AuthenticatedUser(token)}
        session_id = headers.get("mcp-session-id")
        if session_id is None:
            await self.sessions.handle_request(scope, receive, send)
            return
        self.watch.touched(session_id, caller, ended=scope["method"] == "DELETE")
        if scope["method"] != "GET":
            await self.sessions.handle_request(scope, receive, send)
            return
        with self.watch.streaming(session_id, caller):
            await self.sessions.handle_request(scope, receive, send)


async def _send_error(
    send: Any, status: int, message: str, extra: dict[str, str] | None = None
) -> None:
    body = json.dumps(error_body(status, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
