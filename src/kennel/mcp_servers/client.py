"""Talking to a registered MCP server: list its tools, call one.

The official `mcp` SDK's client over Streamable HTTP, on an HTTP client that dials only
addresses the webhook rules allow (see `kennel.core.addresses`): each request resolves
the host, refuses it if any answer is blocked, and connects to the checked address itself,
with the original Host header and TLS server name, so a DNS answer that changes between the
check and the connection (rebinding) changes nothing. Redirects are the SDK's: same origin only.

Nothing here raises for the server's failures: each function answers what happened, in words
a model (and a person reading the turn) can use.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
import mcp_types
from mcp.client.streamable_http import streamable_http_client

from kennel.core.addresses import (
    BlockedAddressError,
    IPNetwork,
    WebhookUrlError,
    parse_target,
    resolve_allowed,
)
from kennel.core.causes import causes
from mcp import Client

__all__ = ["Called", "Listed", "RemoteTool", "call_tool", "list_tools"]

_MAX_TOOLS = 64  # per server: every tool's schema is sent with every model request
_MAX_RESULT_CHARS = 50_000
_MAX_DESCRIPTION = 1_000


@dataclass(frozen=True, slots=True)
class RemoteTool:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Listed:
    tools: list[RemoteTool]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Called:
    """A tool's answer as text, the web links it gave, or the error it (or the call) ended in."""

    text: str
    links: list[dict[str, str]]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Dialing:
    """How to reach servers: the webhook rules (`KENNEL_ALLOW_PRIVATE_WEBHOOKS`,
    `KENNEL_WEBHOOK_ALLOWED_NETWORKS`) and a time limit for one list or call."""

    allow_private: bool
    allowed_networks: Sequence[IPNetwork] = ()
    timeout: float = 60.0


async def list_tools(url: str, headers: Mapping[str, str], dialing: Dialing) -> Listed:
    """The server's tools (at most `_MAX_TOOLS`), or why they could not be listed."""
    try:
        async with asyncio.timeout(dialing.timeout), _connect(url, headers, dialing) as client:
            found: list[RemoteTool] = []
            cursor: str | None = None
            while len(found) < _MAX_TOOLS:
                page = await client.list_tools(cursor=cursor)
                found.extend(_tool(tool) for tool in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            return Listed(tools=found[:_MAX_TOOLS])
    except Exception as exc:  # any failure of the server is an answer
        return Listed(tools=[], error=_reason(exc, dialing))


async def call_tool(
    url: str, headers: Mapping[str, str], dialing: Dialing, name: str, arguments: dict[str, Any]
) -> Called:
    try:
        async with asyncio.timeout(dialing.timeout), _connect(url, headers, dialing) as client:
            result = await client.call_tool(name, arguments)
    except Exception as exc:  # any failure of the server is an answer
        return Called(text="", links=[], error=_reason(exc, dialing))
    text, links = _content(result)
    if result.is_error:
        return Called(text="", links=links, error=text or "the tool failed without saying why")
    return Called(text=text, links=links)


@contextlib.asynccontextmanager
async def _connect(url: str, headers: Mapping[str, str], dialing: Dialing) -> AsyncIterator[Client]:
    """A session with the server; its HTTP client (which the SDK leaves open) closed after."""
    async with (
        httpx2.AsyncClient(
            headers=dict(headers),
            transport=_CheckedTransport(dialing),
            timeout=httpx2.Timeout(dialing.timeout),
            trust_env=False,
        ) as http,
        Client(streamable_http_client(url, http_client=http), raise_exceptions=True) as client,
    ):
        yield client


def _tool(tool: mcp_types.Tool) -> RemoteTool:
    schema = dict(tool.input_schema) if isinstance(tool.input_schema, dict) else {}
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return RemoteTool(
        name=tool.name,
        description=(tool.description or tool.title or tool.name)[:_MAX_DESCRIPTION],
        input_schema=schema,
    )


def _content(result: mcp_types.CallToolResult) -> tuple[str, list[dict[str, str]]]:
    """The result's text (structured content as JSON when there is no text) and its links."""
    texts: list[str] = []
    links: list[dict[str, str]] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            texts.append(block.text)
        elif isinstance(block, mcp_types.ResourceLink):
            uri = str(block.uri)
            title = block.title or block.name or uri
            texts.append(f"[{title}]({uri})")
            if uri.startswith(("http://", "https://")):
                links.append({"url": uri, "title": title})
        elif isinstance(block, mcp_types.EmbeddedResource):
            resource = block.resource
            texts.append(getattr(resource, "text", None) or f"(a resource at {resource.uri})")
        else:
            texts.append(f"({block.type} content, not shown)")
    if not texts and result.structured_content is not None:
        texts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(texts)
    if len(text) > _MAX_RESULT_CHARS:
        text = text[:_MAX_RESULT_CHARS] + f"\n…(truncated, {len(text)} characters in all)"
    return text, links


class _CheckedTransport(httpx2.AsyncBaseTransport):
    """Sends each request to an address of its host that the webhook rules allow."""

    def __init__(self, dialing: Dialing) -> None:
        self.dialing = dialing
        self.inner = httpx2.AsyncHTTPTransport(verify=_ssl_context(), trust_env=False)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        target = parse_target(str(request.url), allow_private=self.dialing.allow_private)
        addresses = await resolve_allowed(
            target.host,
            target.port,
            allow_private=self.dialing.allow_private,
            allowed_networks=self.dialing.allowed_networks,
        )
        if target.url.scheme == "https" and target.ip is None:
            request.extensions = {**request.extensions, "sni_hostname": target.host.rstrip(".")}
        request.headers["host"] = request.url.netloc.decode("ascii")
        request.url = request.url.copy_with(host=addresses[0])
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _reason(exc: BaseException, dialing: Dialing) -> str:
    """The first cause of a failure, in a sentence."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    for current in causes(exc):
        if isinstance(current, BlockedAddressError):
            return f"its address {current.address} is not allowed ({current.reason})"
        if isinstance(current, WebhookUrlError):
            return str(current)
        if isinstance(current, TimeoutError):
            return f"it did not answer within {dialing.timeout:g} s"
        if isinstance(current, ConnectionRefusedError):
            return "the connection was refused"
        if isinstance(current, httpx2.HTTPStatusError):
            return f"it answered HTTP {current.response.status_code}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
