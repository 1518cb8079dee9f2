"""The only code that queries MCP servers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, func, insert, select

from kennel.db import Read, Write, select_rows
from kennel.models import mcp_servers

__all__ = ["ServerRow", "by_name", "count_of", "delete_named", "insert_server", "of_organization"]


class ServerRow(NamedTuple):
    id: str
    organization_id: str
    name: str
    url: str
    headers_sealed: str
    header_names: list[str]
    created_by_user_id: str
    created_at: datetime


_SELECT = select_rows(ServerRow, mcp_servers)


async def of_organization(
    r: Read, organization_id: str, names: Sequence[str] | None = None
) -> list[ServerRow]:
    """The organization's servers by name (only those `names` lists, when given)."""
    query = _SELECT.where(mcp_servers.c.organization_id == organization_id)
    if names is not None:
        query = query.where(mcp_servers.c.name.in_(list(names)))
    rows = await r.all(query.order_by(mcp_servers.c.name))
    return [ServerRow._make(row) for row in rows]


async def by_name(r: Read, organization_id: str, name: str) -> ServerRow | None:
    row = await r.first(
        _SELECT.where(mcp_servers.c.organization_id == organization_id, mcp_servers.c.name == name)
    )
    return ServerRow._make(row) if row else None


async def count_of(r: Read, organization_id: str) -> int:
    query = select(func.count()).where(mcp_servers.c.organization_id == organization_id)
    return int(await r.scalar(query) or 0)


async def insert_server(w: Write, row: ServerRow) -> None:
    """Insert it; a name the organization already has is an IntegrityError."""
    values: dict[str, Any] = row._asdict()
    await w.execute(insert(mcp_servers), values)


async def delete_named(w: Write, organization_id: str, name: str) -> bool:
    """Delete the organization's server of that name; whether there was one."""
    deleted = await w.execute(
        delete(mcp_servers).where(
            mcp_servers.c.organization_id == organization_id, mcp_servers.c.name == name
        )
    )
    return deleted > 0
