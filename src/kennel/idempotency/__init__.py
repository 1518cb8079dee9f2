"""`Idempotency-Key`: a POST sent again with the same key does its work once.

The official SDKs send a request again after 60 s without an answer, and on 408, 409, 429 and
5xx answers; a client that sends `Idempotency-Key: <its own unique value>` (in the Python SDK,
`extra_headers={"Idempotency-Key": ...}`, which its retries repeat) gets, for 24 hours, the
first request's outcome for the same request again, and a 409 for another request under the
same key. Keys are per organization and per operation (`POST /api/tasks`, `POST /api/workers`).
The key is recorded in the transaction that makes the task or the worker, so two copies racing
each other make one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Header

from kennel.api.errors import Conflict
from kennel.core.timestamps import utcnow
from kennel.db import Read, Write
from kennel.idempotency import repository as repo

__all__ = [
    "HEADER",
    "KEEP",
    "Idempotency",
    "IdempotencyKeyHeader",
    "from_header",
    "recorded",
    "remember",
]

HEADER = "Idempotency-Key"
KEEP = timedelta(hours=24)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description=(
            "Your unique value for this request: sent again within 24 hours with the same"
            " request, it answers as the first did and makes nothing new; with another"
            " request, a 409."
        ),
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",  # printable ASCII without spaces
    ),
]


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A request's key and what identifies the request itself."""

    operation: str
    key: str
    request_hash: str


def from_header(
    value: str | None, operation: str, request: Callable[[], Any]
) -> Idempotency | None:
    """The key of a request (None without the header; the header's form is checked by its
    `IdempotencyKeyHeader` declaration). `request()` gives its parsed content as JSON-able
    values, uploads as their names and digests: it is called only when a key was sent, so a
    request without one hashes nothing."""
    if value is None:
        return None
    canonical = json.dumps(request(), sort_keys=True, ensure_ascii=False, default=str)
    return Idempotency(operation, value, hashlib.sha256(canonical.encode()).hexdigest())


async def recorded(r: Read, organization_id: str, idem: Idempotency) -> str | None:
    """The id of what the first request with this key made, or None when it is new (or
    expired); a 409 when the key came with another request."""
    now = utcnow()
    row = await repo.find(r, organization_id, idem.operation, idem.key, since=now - KEEP)
    if row is None:
        return None
    if row.request_hash != idem.request_hash:
        raise Conflict(
            f"{HEADER} {idem.key!r} was used with another request in the last 24 hours; "
            "send a new key for a new request."
        )
    return row.resource_id


async def remember(
    w: Write, organization_id: str, idem: Idempotency, resource_id: str, now: datetime | None = None
) -> None:
    """Record the key with what its request made (in the transaction that made it)."""
    now = now or utcnow()
    row = repo.KeyRow(
        organization_id, idem.operation, idem.key, idem.request_hash, resource_id, now
    )
    await repo.insert_key(w, row, expired_before=now - KEEP)
