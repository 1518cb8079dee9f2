"""Decisions about a worker's inbox: who besides its organization may write to it."""

from __future__ import annotations

import re

from kennel.api.errors import BadRequest
from kennel.auth import Caller
from kennel.db import Database
from kennel.mail import repository as repo
from kennel.mail.addresses import normalize_address
from kennel.workers import service as workers_service

__all__ = [
    "MAX_ALLOWED_SENDERS",
    "MAX_SENDER_LENGTH",
    "SENDER_PATTERN",
    "get_allowed_senders",
    "set_allowed_senders",
]

MAX_ALLOWED_SENDERS = 500
MAX_SENDER_LENGTH = 320
# An address or `@domain`: no spaces, controls or list punctuation, a dot in the domain. It is
# also the OpenAPI pattern of an entry (fullmatch here: `$` would let a trailing newline in).
SENDER_PATTERN = r'^[^@\x00-\x20\x7f<>,;"]*@[^@\x00-\x20\x7f<>,;"]+\.[^@\x00-\x20\x7f<>,;"]+$'
_SENDER = re.compile(SENDER_PATTERN)


async def get_allowed_senders(db: Database, caller: Caller, worker_id: str) -> list[str]:
    async with db.read() as r:
        worker = await workers_service.visible_worker(r, caller, worker_id)
        return await repo.allowed_senders(r, worker.id)


def _pattern(value: str) -> str:
    """`ann@example.com` or `@example.com`, in lower case; a 400 naming `senders` else."""
    if len(value) > MAX_SENDER_LENGTH or not _SENDER.fullmatch(value):
        raise BadRequest(
            f"senders: {value[:80]!r} is neither an address (ann@example.com) nor a domain "
            "(@example.com).",
            param="senders",
        )
    return normalize_address(value)


async def set_allowed_senders(
    db: Database, caller: Caller, worker_id: str, senders: list[str]
) -> list[str]:
    """Replace the allow-list (the same rules as editing the worker)."""
    patterns = sorted({_pattern(s) for s in senders})
    if len(patterns) > MAX_ALLOWED_SENDERS:
        raise BadRequest(f"senders: at most {MAX_ALLOWED_SENDERS} entries.", param="senders")
    async with db.write() as w:
        worker = await workers_service.visible_worker(w, caller, worker_id)
        await repo.set_allowed_senders(w, worker.id, patterns)
    return patterns
