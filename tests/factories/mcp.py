"""A real MCP server (the official `mcp` SDK's MCPServer, Streamable HTTP) on 127.0.0.1.

It asks for a bearer token, as a hosted MCP server does, and records what it was sent.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import mcp_types
import uvicorn
from mcp.server.mcpserver import MCPServer

__all__ = ["DocsServer", "serve_docs_mcp"]


@dataclass
class DocsServer:
    url: str = ""
    token: str = "s3cret-token"
    calls: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)


def _app(server: DocsServer) -> Any:
    mcp = MCPServer("docs")

    @mcp.tool(description="Look a term up in the team's documentation.")
    def lookup(term: str) -> list[mcp_types.ContentBlock]:
        server.calls.append({"tool": "lookup", "term": term})
        slug = "-".join(term.lower().split())[:40] or "index"
        return [
            mcp_types.TextContent(type="text", text=f"The docs say: {term} is well documented."),
            mcp_types.ResourceLink(
                type="resource_link",
                uri=f"https://docs.example/{slug}",
                name=slug,
                title=f"{term} - Team docs",
            ),
        ]

    @mcp.tool(description="Always fails.")
    def broken() -> str:
        server.calls.append({"tool": "broken"})
        raise ValueError("the docs index is being rebuilt")

    inner = mcp.streamable_http_app(stateless_http=True, json_response=True)

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            given = headers.get(b"authorization", b"").decode()
            server.authorizations.append(given)
            if given != f"Bearer {server.token}":
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await inner(scope, receive, send)

    return guarded


@contextlib.contextmanager
def serve_docs_mcp() -> Iterator[DocsServer]:
    """The server, its URL ending in `/mcp`, for the length of the block."""
    server = DocsServer()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        _app(server), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not runner.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the MCP test server did not start")
        time.sleep(0.02)
    server.url = f"http://127.0.0.1:{port}/mcp"
    try:
        yield server
    finally:
        runner.should_exit = True
        thread.join(10)
