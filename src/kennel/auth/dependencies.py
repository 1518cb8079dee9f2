"""The `Caller` dependency: who is asking, from the bearer key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kennel.auth.keys import hash_key, key_matches, looks_like_key
from kennel.auth.repository import owner_of_key
from kennel.errors import Unauthorized

__all__ = ["Caller", "CallerDep", "authenticate"]

_bearer = HTTPBearer(auto_error=False, description="A Kennel API key (`knl_...`).")


@dataclass(frozen=True, slots=True)
class Caller:
    """The user an API key acts as; tenant ids always come from here."""

    user_id: str
    organization_id: str
    role: str
    key_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    key = credentials.credentials
    if not looks_like_key(key):
        raise Unauthorized()
    owner = await owner_of_key(request.app.state.db.reader, hash_key(key))
    if owner is None or not key_matches(key, owner.key_hash):
        raise Unauthorized()
    request.state.caller_user_id = owner.user_id
    return Caller(owner.user_id, owner.organization_id, owner.role, owner.key_id)


CallerDep = Annotated[Caller, Depends(authenticate)]
