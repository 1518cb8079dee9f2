"""Who may write to a worker: the worker an address names, and whether a sender may use it."""

from __future__ import annotations

from kennel.core.runtime import Runtime
from kennel.mail import repository as repo
from kennel.mail.addresses import normalize_address, split_address
from kennel.mail.listener import ACCEPT, NO_SUCH_MAILBOX, SENDER_REFUSED, RcptDecision
from kennel.workers.repository import WorkerRow

__all__ = ["accept_recipient", "is_allowed", "worker_of_address"]


async def worker_of_address(rt: Runtime, address: str) -> tuple[WorkerRow, str | None] | None:
    """The worker `address` is for, and its +tag; None when it names none."""
    try:
        local, tag, domain = split_address(address)
    except ValueError:
        return None
    if domain.lower() != rt.settings.mail_domain:
        return None
    async with rt.db.read(snapshot=False) as r:
        worker = await repo.worker_by_local_part(r, local)
    return (worker, tag) if worker else None


async def is_allowed(rt: Runtime, worker: WorkerRow, address: str) -> bool:
    """Whether `address` may start tasks on the worker: a user of its organization who may
    see it, or an address or domain on its allow-list."""
    address = normalize_address(address)
    if "@" not in address:
        return False
    async with rt.db.read() as r:
        patterns = await repo.allowed_senders(r, worker.id)
        if address in patterns or "@" + address.rsplit("@", 1)[1] in patterns:
            return True
        for user_id in await repo.organization_users_with_email(r, worker.organization_id, address):
            if await repo.visible_to_user(r, worker.id, worker.organization_id, user_id):
                return True
    return False


async def accept_recipient(rt: Runtime, address: str, mail_from: str) -> RcptDecision:
    found = await worker_of_address(rt, address)
    if found is None:
        return NO_SUCH_MAILBOX
    worker, _ = found
    # Without sender authentication the envelope sender is all there is: one that may not
    # write is refused here, before the message is sent. A bounce (<>) is taken, to be kept
    # and ignored as automatic mail.
    if rt.settings.mail_sender_auth == "none" and mail_from:
        if not await is_allowed(rt, worker, mail_from):
            return SENDER_REFUSED
    return ACCEPT
