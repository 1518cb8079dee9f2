"""Factories for test data; each call makes rows no other test sees."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select

from kennel.auth import Caller
from kennel.auth.service import issue_key

__all__ = ["Member", "count_rows", "make_member"]


@dataclass(frozen=True)
class Member:
    key: str
    user_id: str
    organization_id: str
    organization: str
    email: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def caller(self) -> Caller:
        """The `Caller` the member's key acts as, for calling services directly."""
        return Caller(self.user_id, self.organization_id, "member", "key_test")


async def make_member(
    app: FastAPI, *, organization: str | None = None, role: str = "member"
) -> Member:
    """A user with a key, in `organization` (a new one unless given)."""
    organization = organization or f"org-{secrets.token_hex(6)}"
    email = f"user-{secrets.token_hex(4)}@example.com"
    issued = await issue_key(
        app.state.runtime.db, email=email, organization=organization, role=role
    )
    return Member(issued.key, issued.user_id, issued.organization_id, organization, email)


async def count_rows(app: FastAPI, table: Any, organization_id: str) -> int:
    """How many rows of `table` belong to the organization (a request that failed wrote none)."""
    async with app.state.runtime.db.read() as r:
        query = select(func.count()).where(table.c.organization_id == organization_id)
        return int(await r.scalar(query))
