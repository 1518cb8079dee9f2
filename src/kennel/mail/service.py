"""Decisions about a worker's inbox: who besides its organization may write to it."""

from __future__ import annotations

from kennel.auth import Caller
from kennel.db import Database
from kennel.errors import BadRequest
from kennel.mail import repository as repo
from kennel.mail.addresses import normalize_address
from kennel.workers import service as workers

__all__ = ["MAX_ALLOWED_SENDERS", "get_allowed_senders", "set_allowed_senders"]

MAX_ALLOWED_SENDERS = 500


async def get_allowed_senders(db: Database, caller: Caller, worker_id: str) -> list[str]:
    async with db.read() as r:
        worker = await workers.visible_worker(r, caller, worker_id)
        return await repo.allowed_senders(r, worker.id)


def _pattern(value: str) -> str:
    """`ann@example.com` or `@example.com`, in lower case; a 400 naming `senders` else."""
    pattern = normalize_address(value)
    local, _, domain = pattern.rpartition("@")
    if (
        not domain
        or "@" not in pattern
        or "." not in domain
        or any(c.isspace() or c in '<>,;"' for c in pattern)
        or len(pattern) > 320
        or "@" in local
    ):
        raise BadRequest(
            f"senders: {value[:80]!r} is neither an address (ann@example.com) nor a domain "
            "(@example.com).",
            param="senders",
        )
    return pattern


async def set_allowed_senders(
    db: Database, caller: Caller, worker_id: str, senders: list[str]
) -> list[str]:
    """Replace the allow-list (the same rules as editing the worker)."""
    patterns = sorted({_pattern(s) for s in senders})
    if len(patterns) > MAX_ALLOWED_SENDERS:
        raise BadRequest(f"senders: at most {MAX_ALLOWED_SENDERS} entries.", param="senders")
    async with db.write() as w:
        worker = await workers.visible_worker(w, caller, worker_id)
        await repo.set_allowed_senders(w, worker.id, patterns)
    return patterns
