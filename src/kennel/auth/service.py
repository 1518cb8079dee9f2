"""Decisions about organizations, users and keys: bootstrap, issuing, revoking."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from kennel.auth import repository as repo
from kennel.auth.dependencies import KEY_TRUST_SECONDS
from kennel.auth.keys import KEY_PREFIX, generate_key, hash_key
from kennel.core.ids import new_id
from kennel.core.timestamps import utcnow
from kennel.db import Database

__all__ = ["DEFAULT_ORGANIZATION", "IssuedKey", "bootstrap", "issue_key", "revoke_key"]

log = logging.getLogger("kennel.auth")

DEFAULT_ORGANIZATION = "default"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: str  # shown once, never stored
    key_id: str
    user_id: str
    organization_id: str
    organization_created: bool
    user_created: bool


async def issue_key(
    db: Database,
    *,
    email: str,
    organization: str = DEFAULT_ORGANIZATION,
    role: str = "member",
    key: str | None = None,
) -> IssuedKey:
    """Create the organization and user when new, and a key for that user."""
    now = utcnow()
    async with db.write() as w:
        org = await repo.organization_by_name(w, organization)
        org_created = org is None
        if org is None:
            org = repo.OrganizationRow(new_id("org"), organization, now)
            await repo.insert_organization(w, org)
        user = await repo.user_by_email(w, org.id, email)
        user_created = user is None
        if user is None:
            user = repo.UserRow(new_id("usr"), org.id, email, role, now)
            await repo.insert_user(w, user)
        key = key or generate_key()
        row = repo.KeyRow(new_id("key"), user.id, hash_key(key), key[:12], now, None)
        await repo.insert_key(w, row)
    return IssuedKey(key, row.id, user.id, org.id, org_created, user_created)


async def bootstrap(db: Database, *, key: str | None, admin_email: str) -> bool:
    """With no key in the database, give the admin of a default organization `key`."""
    if not key:
        return False
    async with db.read(snapshot=False) as r:
        if await repo.any_key_exists(r):
            return False
    await issue_key(db, email=admin_email, role="admin", key=key)
    log.info("bootstrap: created organization %r and admin %s", DEFAULT_ORGANIZATION, admin_email)
    return True


async def revoke_key(
    db: Database, key_or_id: str
) -> Literal["revoked", "already revoked", "unknown"]:
    """Revoke by key id (`key_...`) or by the key itself. Returns once no server accepts the
    key: a server trusts a key it checked for `KEY_TRUST_SECONDS`, so this waits that long."""
    async with db.write() as w:
        if key_or_id.startswith(KEY_PREFIX):
            found = await repo.key_by_hash_or_id(w, key_hash=hash_key(key_or_id))
        else:
            found = await repo.key_by_hash_or_id(w, key_id=key_or_id)
        if found is None:
            return "unknown"
        revoked = await repo.revoke_key(w, found.id)
    if not revoked:
        return "already revoked"
    await asyncio.sleep(KEY_TRUST_SECONDS)
    return "revoked"
