"""The only code that queries idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, delete, insert, select

from kennel.db import Read, Write
from kennel.models import idempotency_keys

__all__ = ["KeyRow", "find", "insert_key"]


class KeyRow(NamedTuple):
    organization_id: str
    operation: str
    key: str
    request_hash: str
    resource_id: str
    created_at: datetime


def _where(organization_id: str, operation: str, key: str) -> ColumnElement[bool]:
    c = idempotency_keys.c
    return and_(c.organization_id == organization_id, c.operation == operation, c.key == key)


async def find(
    r: Read, organization_id: str, operation: str, key: str, *, since: datetime
) -> KeyRow | None:
    """The key's row, unless it is older than `since`."""
    row = await r.first(
        select(*idempotency_keys.c).where(
            _where(organization_id, operation, key), idempotency_keys.c.created_at >= since
        )
    )
    return KeyRow._make(row) if row else None


async def insert_key(w: Write, row: KeyRow, *, expired_before: datetime) -> None:
    """Record the key, in place of an expired row of the same key; a live row of the key (a
    copy of the request that got there first) makes it an IntegrityError."""
    same = _where(row.organization_id, row.operation, row.key)
    expired = idempotency_keys.c.created_at < expired_before
    await w.execute(delete(idempotency_keys).where(same, expired))
    await w.execute(insert(idempotency_keys), row._asdict())
