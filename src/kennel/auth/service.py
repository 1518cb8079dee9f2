"""Decisions about organizations, users and keys: bootstrap, issuing, revoking."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from kennel.auth.keys import KEY_PREFIX, generate_key, hash_key
from kennel.auth.repository import AuthRepository
from kennel.ids import new_id
from kennel.models import ApiKey, Organization, User

__all__ = ["DEFAULT_ORGANIZATION", "IssuedKey", "bootstrap", "issue_key", "revoke_key"]

log = logging.getLogger("kennel.auth")

DEFAULT_ORGANIZATION = "default"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: str  # shown once, never stored
    key_id: str
    user_id: str
    organization_id: str


async def issue_key(
    session: AsyncSession,
    *,
    email: str,
    organization: str = DEFAULT_ORGANIZATION,
    role: str = "member",
    key: str | None = None,
) -> IssuedKey:
    """Create the organization and user when new, and a key for that user."""
    repo = AuthRepository(session)
    org = await repo.organization_by_name(organization)
    if org is None:
        org = Organization(id=new_id("org"), name=organization)
        repo.add(org)
        await session.flush()
    user = await repo.user_by_email(org.id, email)
    if user is None:
        user = User(id=new_id("usr"), organization_id=org.id, email=email, role=role)
        repo.add(user)
        await session.flush()
    key = key or generate_key()
    api_key = ApiKey(id=new_id("key"), user_id=user.id, key_hash=hash_key(key), prefix=key[:12])
    repo.add(api_key)
    await session.flush()
    return IssuedKey(key=key, key_id=api_key.id, user_id=user.id, organization_id=org.id)


async def bootstrap(session: AsyncSession, *, key: str | None, admin_email: str) -> bool:
    """With no key in the database, give the admin of a default organization `key`."""
    if not key or await AuthRepository(session).any_key_exists():
        return False
    await issue_key(session, email=admin_email, role="admin", key=key)
    log.info("bootstrap: created organization %r and admin %s", DEFAULT_ORGANIZATION, admin_email)
    return True


async def revoke_key(session: AsyncSession, key_or_id: str) -> bool:
    """Revoke by key id (`key_...`) or by the key itself."""
    repo = AuthRepository(session)
    if key_or_id.startswith(KEY_PREFIX):
        return await repo.revoke(key_hash=hash_key(key_or_id))
    return await repo.revoke(key_id=key_or_id)
