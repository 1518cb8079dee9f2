"""The only code that queries organizations, users and API keys."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kennel.models import ApiKey, Organization, User
from kennel.reads import Reader, Snapshot
from kennel.timestamps import utcnow

__all__ = ["AuthRepository", "KeyOwner", "owner_of_key"]


@dataclass(frozen=True, slots=True)
class KeyOwner:
    key_id: str
    key_hash: str
    user_id: str
    organization_id: str
    role: str


# Built once: building and cache-keying a statement costs about as much CPU as running it,
# and this one runs on every request.
_OWNER_OF_KEY = (
    select(ApiKey.id, ApiKey.key_hash, User.id, User.organization_id, User.role)
    .join(User, User.id == ApiKey.user_id)
    .where(ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None))
)


async def owner_of_key(reader: Reader | Snapshot, key_hash: str) -> KeyOwner | None:
    """The key's owner, outside any ORM session: this runs before every request."""
    row = await reader.first(_OWNER_OF_KEY, {"key_hash": key_hash})
    return KeyOwner(*row) if row else None


class AuthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def any_key_exists(self) -> bool:
        return bool(await self.session.scalar(select(exists().select_from(ApiKey))))

    async def organization_by_name(self, name: str) -> Organization | None:
        return await self.session.scalar(select(Organization).where(Organization.name == name))

    async def user_by_email(self, organization_id: str, email: str) -> User | None:
        return await self.session.scalar(
            select(User).where(User.organization_id == organization_id, User.email == email)
        )

    async def user_in_organization(self, organization_id: str, user_id: str) -> User | None:
        return await self.session.scalar(
            select(User).where(User.organization_id == organization_id, User.id == user_id)
        )

    async def revoke(self, *, key_id: str | None = None, key_hash: str | None = None) -> bool:
        """Revoke the key with that id, or with that hash."""
        which = ApiKey.id == key_id if key_id is not None else ApiKey.key_hash == key_hash
        result = await self.session.execute(
            update(ApiKey).where(which, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def list_keys(self) -> list[tuple[ApiKey, User, Organization]]:
        rows = await self.session.execute(
            select(ApiKey, User, Organization)
            .join(User, User.id == ApiKey.user_id)
            .join(Organization, Organization.id == User.organization_id)
            .order_by(ApiKey.created_at)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]

    def add(self, *objects: object) -> None:
        self.session.add_all(objects)
