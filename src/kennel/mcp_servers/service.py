"""Decisions about MCP servers: what may be registered, and reaching them for a turn."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError

from kennel.api.errors import ApiError, BadRequest, Conflict
from kennel.auth import Caller
from kennel.core.addresses import WebhookUrlError, check_url_resolving
from kennel.core.ids import new_id
from kennel.core.settings import Settings
from kennel.core.timestamps import utcnow
from kennel.db import Database, Read
from kennel.mcp_servers import repository as repo
from kennel.mcp_servers.client import Called, Dialing, Listed, call_tool, list_tools
from kennel.mcp_servers.repository import ServerRow
from kennel.mcp_servers.sealing import SealError, open_headers, seal_headers, sealing_key

__all__ = [
    "MAX_SERVERS",
    "MAX_SERVERS_PER_WORKER",
    "call_server_tool",
    "check_worker_servers",
    "list_server_tools",
    "list_servers",
    "register_server",
    "remove_server",
]

MAX_SERVERS = 50  # per organization
MAX_SERVERS_PER_WORKER = 10
_MAX_HEADERS = 20
_MAX_HEADER_VALUE = 8192
# RFC 9110 token characters; Host and the headers the transport sets itself are refused.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}$")
_RESERVED = {"host", "content-length", "content-type", "accept", "connection",
             "transfer-encoding", "mcp-session-id", "mcp-protocol-version"}  # fmt: skip


async def register_server(
    db: Database,
    settings: Settings,
    caller: Caller,
    *,
    name: str,
    url: str,
    headers: dict[str, str] | None,
) -> ServerRow:
    headers = headers or {}
    _check_headers(headers)
    try:
        # Outside the transaction: a slow resolver holds no lock.
        await check_url_resolving(
            url,
            allow_private=settings.allow_private_webhooks,
            allowed_networks=settings.webhook_allowed_networks,
        )
    except WebhookUrlError as exc:
        raise BadRequest(f"url: {exc}", param="url") from None
    key = await sealing_key(db, settings)
    row = ServerRow(
        id=new_id("mcp"),
        organization_id=caller.organization_id,
        name=name,
        url=url,
        headers_sealed=seal_headers(key, headers),
        header_names=sorted(headers),
        created_by_user_id=caller.user_id,
        created_at=utcnow(),
    )
    try:
        async with db.write() as w:
            if await repo.count_of(w, caller.organization_id) >= MAX_SERVERS:
                raise Conflict(
                    f"The organization has {MAX_SERVERS} MCP servers, the most it may have;"
                    " remove one first."
                )
            if await repo.by_name(w, caller.organization_id, name) is not None:
                raise _taken(name)
            await repo.insert_server(w, row)
    except IntegrityError:  # another request registered the name first
        raise _taken(name) from None
    return row


def _taken(name: str) -> Conflict:
    return Conflict(f"An MCP server named {name!r} is already registered.")


def _check_headers(headers: dict[str, str]) -> None:
    if len(headers) > _MAX_HEADERS:
        raise BadRequest(f"headers: at most {_MAX_HEADERS} headers.", param="headers")
    for header, value in headers.items():
        if not _HEADER_NAME.match(header):
            raise BadRequest(f"headers: {header!r} is not a header name.", param="headers")
        if header.lower() in _RESERVED:
            raise BadRequest(f"headers: {header} is set by Kennel itself.", param="headers")
        if len(value) > _MAX_HEADER_VALUE or any(c in value for c in "\r\n\0"):
            raise BadRequest(
                f"headers: the value of {header} must be one line of at most"
                f" {_MAX_HEADER_VALUE} characters.",
                param="headers",
            )


async def list_servers(db: Database, caller: Caller) -> list[ServerRow]:
    async with db.read() as r:
        return await repo.of_organization(r, caller.organization_id)


async def remove_server(db: Database, caller: Caller, name: str) -> None:
    """Remove it; workers that name it go on without its tools (their turns say so)."""
    async with db.write() as w:
        if not await repo.delete_named(w, caller.organization_id, name):
            raise ApiError(404, f"No MCP server named {name!r}.")


async def check_worker_servers(r: Read, organization_id: str, names: Sequence[str]) -> list[str]:
    """A worker's `mcpServers`, checked: registered names, each once."""
    if len(names) > MAX_SERVERS_PER_WORKER:
        raise BadRequest(
            f"mcpServers: at most {MAX_SERVERS_PER_WORKER} servers.", param="mcpServers"
        )
    wanted = list(dict.fromkeys(names))
    known = {row.name for row in await repo.of_organization(r, organization_id, wanted)}
    if missing := [name for name in wanted if name not in known]:
        raise BadRequest(
            f"mcpServers: no MCP server named {missing[0]!r} is registered"
            " (POST /api/mcp-servers registers one).",
            param="mcpServers",
        )
    return wanted


def _dialing(settings: Settings) -> Dialing:
    return Dialing(
        allow_private=settings.allow_private_webhooks,
        allowed_networks=settings.webhook_allowed_networks,
    )


async def list_server_tools(
    db: Database, settings: Settings, organization_id: str, names: Sequence[str]
) -> dict[str, Listed]:
    """The tools of each named server, or why not (not registered any more, unreachable...)."""
    async with db.read() as r:
        rows = {row.name: row for row in await repo.of_organization(r, organization_id, names)}
    key = await sealing_key(db, settings) if rows else None
    listed: dict[str, Listed] = {}
    for name in names:
        row = rows.get(name)
        if row is None:
            listed[name] = Listed(tools=[], error="it is no longer registered")
            continue
        assert key is not None
        try:
            headers = open_headers(key, row.headers_sealed)
        except SealError as exc:
            listed[name] = Listed(tools=[], error=str(exc))
            continue
        listed[name] = await list_tools(row.url, headers, _dialing(settings))
    return listed


async def call_server_tool(
    db: Database,
    settings: Settings,
    organization_id: str,
    server: str,
    tool: str,
    arguments: dict[str, object],
) -> Called:
    async with db.read() as r:
        row = await repo.by_name(r, organization_id, server)
    if row is None:
        return Called(text="", links=[], error=f"the MCP server {server!r} is no longer registered")
    try:
        headers = open_headers(await sealing_key(db, settings), row.headers_sealed)
    except SealError as exc:
        return Called(text="", links=[], error=str(exc))
    return await call_tool(row.url, headers, _dialing(settings), tool, dict(arguments))
