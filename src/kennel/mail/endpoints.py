"""HTTP routes of a worker's inbox: the senders allowed besides its organization."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from kennel.api.http import KennelRoute
from kennel.auth import CallerDep
from kennel.core.runtime import of_request
from kennel.mail import service

__all__ = ["AllowedSenders", "router"]

router = APIRouter(
    prefix="/api/workers/{workerId}/email/allowed-senders",
    tags=["Workers"],
    route_class=KennelRoute,
)


class AllowedSenders(BaseModel):
    model_config = ConfigDict(extra="forbid")

    senders: list[
        Annotated[
            str,
            Field(
                max_length=service.MAX_SENDER_LENGTH,
                json_schema_extra={"pattern": service.SENDER_PATTERN},
            ),
        ]
    ] = Field(
        max_length=service.MAX_ALLOWED_SENDERS,
        description=(
            "Addresses (`ann@example.com`) and domains (`@example.com`) that may write to the "
            "worker besides its organization's members."
        ),
    )


@router.get("", response_model=AllowedSenders)
async def list_allowed_senders(
    workerId: str, request: Request, caller: CallerDep
) -> AllowedSenders:
    """Who besides the organization may mail a worker (a Kennel extension)."""
    rt = of_request(request)
    return AllowedSenders(senders=await service.get_allowed_senders(rt.db, caller, workerId))


@router.put("", response_model=AllowedSenders)
async def set_allowed_senders(
    workerId: str, body: AllowedSenders, request: Request, caller: CallerDep
) -> AllowedSenders:
    """Replace who besides the organization may mail a worker (a Kennel extension)."""
    rt = of_request(request)
    saved = await service.set_allowed_senders(rt.db, caller, workerId, body.senders)
    return AllowedSenders(senders=saved)
