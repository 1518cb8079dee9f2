"""The `Caller` dependency: who is asking, from the bearer key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from kennel.auth.keys import hash_key, key_matches, looks_like_key
from kennel.auth.repository import owner_of_key
from kennel.db import Database
from kennel.errors import Unauthorized

__all__ = ["ApiKeyBearer", "Caller", "CallerDep", "authenticate", "caller_of"]


@dataclass(frozen=True, slots=True)
class Caller:
    """The user an API key acts as; tenant ids always come from here."""

    user_id: str
    organization_id: str
    role: str
    key_id: str


class ApiKeyBearer(HTTPBearer):
    """Bearer auth with a Kennel API key: the dependency that yields the `Caller`.

    One dependency, not `HTTPBearer` plus a second one that takes its credentials: FastAPI's
    per-dependency work costs more than the key lookup itself, on every request. Being an
    `HTTPBearer`, it still declares the security scheme in the OpenAPI document.
    """

    def __init__(self) -> None:
        super().__init__(
            scheme_name="HTTPBearer",
            description="A Kennel API key (`knl_...`).",
            auto_error=False,
        )

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]  # yields a Caller, not credentials
        caller = await caller_of(request.app.state.runtime.db, request.headers.get("authorization"))
        request.state.caller_user_id = caller.user_id  # for the access log
        return caller


async def caller_of(db: Database, authorization: str | None) -> Caller:
    """The caller an `Authorization: Bearer <key>` header names; Unauthorized if none."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not looks_like_key(key):
        raise Unauthorized()
    async with db.read(snapshot=False) as r:
        owner = await owner_of_key(r, hash_key(key))
    if owner is None or not key_matches(key, owner.key_hash):
        raise Unauthorized()
    return Caller(owner.user_id, owner.organization_id, owner.role, owner.key_id)


authenticate = ApiKeyBearer()

CallerDep = Annotated[Caller, Depends(authenticate)]
