"""The only code that queries organizations, users and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, delete, exists, insert, or_, select, update

from kennel.core.timestamps import utcnow
from kennel.db import Read, Write, select_rows
from kennel.models import api_keys, dashboard_sessions, organizations, server_secrets, users

__all__ = [
    "KeyListing",
    "KeyOwner",
    "KeyRow",
    "OrganizationRow",
    "UserRow",
    "any_key_exists",
    "insert_key",
    "insert_organization",
    "insert_server_secret",
    "insert_user",
    "key_by_hash_or_id",
    "list_keys",
    "organization_by_name",
    "owner_of_key",
    "revoke_key",
    "server_secret",
    "user_by_email",
    "user_in_organization",
]


class KeyOwner(NamedTuple):
    key_id: str
    key_hash: str
    user_id: str
    organization_id: str
    role: str


class OrganizationRow(NamedTuple):
    id: str
    name: str
    created_at: datetime


class UserRow(NamedTuple):
    id: str
    organization_id: str
    email: str
    role: str
    created_at: datetime


class KeyRow(NamedTuple):
    id: str
    user_id: str
    key_hash: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyListing(NamedTuple):
    key_id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    email: str
    organization: str


# Built once: building and cache-keying a statement costs about as much CPU as running it,
# and this one runs on every request.
_OWNER_OF_KEY = (
    select(api_keys.c.id, api_keys.c.key_hash, users.c.id, users.c.organization_id, users.c.role)
    .join(users, users.c.id == api_keys.c.user_id)
    .where(api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None))
)
_ORGANIZATION_BY_NAME = select_rows(OrganizationRow, organizations).where(
    organizations.c.name == bindparam("name")
)
_USER = select_rows(UserRow, users).where(users.c.organization_id == bindparam("organization_id"))


async def owner_of_key(r: Read, key_hash: str) -> KeyOwner | None:
    """The owner of an active key: runs before every request."""
    row = await r.first(_OWNER_OF_KEY, {"key_hash": key_hash})
    return KeyOwner._make(row) if row else None


async def any_key_exists(r: Read) -> bool:
    return bool(await r.scalar(select(exists().select_from(api_keys))))


async def organization_by_name(r: Read, name: str) -> OrganizationRow | None:
    row = await r.first(_ORGANIZATION_BY_NAME, {"name": name})
    return OrganizationRow._make(row) if row else None


async def user_by_email(r: Read, organization_id: str, email: str) -> UserRow | None:
    row = await r.first(
        _USER.where(users.c.email == bindparam("email")),
        {"organization_id": organization_id, "email": email},
    )
    return UserRow._make(row) if row else None


async def user_in_organization(r: Read, organization_id: str, user_id: str) -> UserRow | None:
    row = await r.first(
        _USER.where(users.c.id == bindparam("user_id")),
        {"organization_id": organization_id, "user_id": user_id},
    )
    return UserRow._make(row) if row else None


async def insert_organization(w: Write, row: OrganizationRow) -> None:
    await w.execute(insert(organizations), row._asdict())


async def insert_user(w: Write, row: UserRow) -> None:
    await w.execute(insert(users), row._asdict())


async def insert_key(w: Write, row: KeyRow) -> None:
    await w.execute(insert(api_keys), row._asdict())


async def key_by_hash_or_id(
    r: Read, *, key_id: str | None = None, key_hash: str | None = None
) -> KeyRow | None:
    """The key with that id, or with that hash, revoked or not."""
    which = api_keys.c.id == key_id if key_id is not None else api_keys.c.key_hash == key_hash
    row = await r.first(select_rows(KeyRow, api_keys).where(which))
    return KeyRow._make(row) if row else None


async def revoke_key(w: Write, key_id: str) -> bool:
    """Revoke an active key; False when it was revoked already."""
    statement = (
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(await w.execute(statement))


async def list_keys(r: Read) -> list[KeyListing]:
    rows = await r.all(
        select(
            api_keys.c.id,
            api_keys.c.prefix,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
            users.c.email,
            organizations.c.name,
        )
        .join(users, users.c.id == api_keys.c.user_id)
        .join(organizations, organizations.c.id == users.c.organization_id)
        .order_by(api_keys.c.created_at, api_keys.c.id)
    )
    return [KeyListing._make(row) for row in rows]


# -- dashboard sessions ---------------------------------------------------------------------

__all__ += [
    "SessionOwner",
    "SessionRow",
    "delete_session",
    "delete_stale_sessions",
    "insert_session",
    "session_owner",
    "touch_session",
]


class SessionRow(NamedTuple):
    id_hash: str
    user_id: str
    key_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class SessionOwner(NamedTuple):
    user_id: str
    organization_id: str
    role: str
    key_id: str
    last_seen_at: datetime


# Runs on every dashboard request. The join on the key is the revocation check: a session lives
# no longer than the API key that signed it in.
_SESSION_OWNER = (
    select(
        users.c.id,
        users.c.organization_id,
        users.c.role,
        api_keys.c.id,
        dashboard_sessions.c.last_seen_at,
    )
    .select_from(dashboard_sessions)
    .join(api_keys, api_keys.c.id == dashboard_sessions.c.key_id)
    .join(users, users.c.id == api_keys.c.user_id)
    .where(
        dashboard_sessions.c.id_hash == bindparam("id_hash"),
        dashboard_sessions.c.expires_at > bindparam("now"),
        dashboard_sessions.c.last_seen_at > bindparam("idle_since"),
        api_keys.c.revoked_at.is_(None),
    )
)


async def insert_session(w: Write, row: SessionRow) -> None:
    await w.execute(insert(dashboard_sessions), row._asdict())


async def session_owner(
    r: Read, id_hash: str, *, now: datetime, idle_since: datetime
) -> SessionOwner | None:
    """Who a live session acts as: not past its end, seen since `idle_since`, its key active."""
    row = await r.first(_SESSION_OWNER, {"id_hash": id_hash, "now": now, "idle_since": idle_since})
    return SessionOwner._make(row) if row else None


async def touch_session(w: Write, id_hash: str, now: datetime) -> None:
    await w.execute(
        update(dashboard_sessions)
        .where(dashboard_sessions.c.id_hash == id_hash)
        .values(last_seen_at=now)
    )


async def delete_session(w: Write, id_hash: str) -> bool:
    statement = delete(dashboard_sessions).where(dashboard_sessions.c.id_hash == id_hash)
    return bool(await w.execute(statement))


async def delete_stale_sessions(
    w: Write, user_id: str, *, now: datetime, idle_since: datetime
) -> int:
    """Forget the user's sessions that can no longer be used; how many there were."""
    statement = delete(dashboard_sessions).where(
        dashboard_sessions.c.user_id == user_id,
        or_(
            dashboard_sessions.c.expires_at <= now,
            dashboard_sessions.c.last_seen_at <= idle_since,
        ),
    )
    return await w.execute(statement)


async def server_secret(r: Read, name: str) -> str | None:
    value = await r.scalar(select(server_secrets.c.value).where(server_secrets.c.name == name))
    return None if value is None else str(value)


async def insert_server_secret(w: Write, name: str, value: str) -> None:
    await w.execute(insert(server_secrets), {"name": name, "value": value, "created_at": utcnow()})
