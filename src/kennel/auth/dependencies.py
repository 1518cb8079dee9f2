"""The `Caller` dependency: who is asking, from the bearer key."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from kennel.api.errors import Unauthorized
from kennel.auth.keys import hash_key, key_matches, looks_like_key
from kennel.auth.repository import owner_of_key
from kennel.core.runtime import of_request
from kennel.db import Database

__all__ = [
    "KEY_TRUST_SECONDS",
    "ApiKeyBearer",
    "Caller",
    "CallerDep",
    "VerifiedKeys",
    "authenticate",
    "caller_of",
]

# How long a key checked against the database is trusted without asking it again. Revoking
# waits this long after its commit (`auth.service.revoke_key`), so once it returns no server
# accepts the key. On PostgreSQL the lookup is one of the two round trips of a read.
KEY_TRUST_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Caller:
    """The user an API key acts as; tenant ids always come from here."""

    user_id: str
    organization_id: str
    role: str
    key_id: str

    @classmethod
    def acting_for(cls, user_id: str, organization_id: str, *, via: str) -> Caller:
        """The caller a starter with no API key acts as (a schedule, a message): the user, as
        a member, `via` saying through what."""
        return cls(user_id, organization_id, "member", via)


class VerifiedKeys:
    """The callers of keys found active in the last `seconds`, by key hash, for one server."""

    def __init__(
        self,
        seconds: float = KEY_TRUST_SECONDS,
        *,
        limit: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.limit = limit
        self.clock = clock
        self._callers: dict[str, tuple[float, Caller]] = {}

    def get(self, key_hash: str) -> Caller | None:
        found = self._callers.get(key_hash)
        if found is None:
            return None
        if found[0] <= self.clock():
            del self._callers[key_hash]
            return None
        return found[1]

    def put(self, key_hash: str, caller: Caller, *, checked_at: float) -> None:
        """Trust `caller` until `seconds` after `checked_at`: a moment before the lookup
        began, so that it cannot outlive a revocation its lookup did not see."""
        if len(self._callers) >= self.limit:
            self._callers.clear()  # rarely: one entry per key in use in the last second
        self._callers[key_hash] = (checked_at + self.seconds, caller)


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
        verified: VerifiedKeys = request.app.state.verified_keys  # one cache per app
        authorization = request.headers.get("authorization")
        caller = await caller_of(of_request(request).db, authorization, verified)
        request.state.caller_user_id = caller.user_id  # for the access log
        return caller


async def caller_of(db: Database, authorization: str | None, verified: VerifiedKeys) -> Caller:
    """The caller an `Authorization: Bearer <key>` header names; Unauthorized if none."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not looks_like_key(key):
        raise Unauthorized()
    key_hash = hash_key(key)
    caller = verified.get(key_hash)
    if caller is not None:
        return caller
    checked_at = verified.clock()
    async with db.read(snapshot=False) as r:
        owner = await owner_of_key(r, key_hash)
    if owner is None or not key_matches(key, owner.key_hash):
        raise Unauthorized()
    caller = Caller(owner.user_id, owner.organization_id, owner.role, owner.key_id)
    verified.put(key_hash, caller, checked_at=checked_at)
    return caller


authenticate = ApiKeyBearer()

CallerDep = Annotated[Caller, Depends(authenticate)]
