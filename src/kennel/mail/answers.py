"""Mail out: when a turn started by mail ends, its answer goes back in the thread.

`answer_mail` is the second "turn ended" listener (kennel.tasks.listeners), with the workflow id
`<turn id>:mail`, so one turn is answered once. The answer is built in one step (its Message-ID
is derived from the turn, and noted as part of the task's thread before it is sent, so a reply
to it continues the task) and sent in another, which DBOS retries with backoff while the relay
refuses or cannot be reached; how it went is kept with the message and in the task's metadata.
"""

from __future__ import annotations

import logging
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from dbos import DBOS

from kennel.core import runtime
from kennel.core.durable import WHILE_TRANSIENT
from kennel.core.settings import Settings
from kennel.mail import repository as repo
from kennel.mail.message import thread_headers
from kennel.mail.replies import (
    OutgoingFile,
    RelayError,
    RelaySettings,
    build_reply,
    failed_turn_text,
    new_message_id,
    send,
)
from kennel.tasks import repository as tasks_repo
from kennel.tasks.listeners import register_turn_listener
from kennel.workers import repository as workers_repo
from kennel.workers.render import worker_email

__all__ = ["answer_mail", "relay_of"]

log = logging.getLogger("kennel.mail")

SEND_ATTEMPTS = 8  # with backoff from 2 s, doubling: about four minutes before giving up


def relay_of(settings: Settings) -> RelaySettings | None:
    if not settings.smtp_relay:
        return None
    password = settings.smtp_relay_password
    return RelaySettings.from_address(
        settings.smtp_relay,
        username=settings.smtp_relay_username,
        password=password.get_secret_value() if password else None,
        starttls=settings.smtp_relay_starttls,
        tls=settings.smtp_relay_tls,
        timeout=settings.smtp_relay_timeout,
    )


@DBOS.workflow()
async def answer_mail(turn_id: str) -> str:
    composed = await _compose(turn_id)
    if composed is None:
        return "not a mail task"
    if isinstance(composed, str):
        return composed
    try:
        await _send(composed)
    except Exception as exc:  # every retry failed (DBOS raises once they are used up)
        await _note(turn_id, "failed", error=str(exc))
        return "failed"
    await _note(turn_id, "sent")
    return "sent"


@DBOS.step(**WHILE_TRANSIENT)
async def _compose(turn_id: str) -> bytes | str | None:
    """The answer, as the bytes to send (None: the turn did not come by mail)."""
    rt = runtime.current()
    settings = rt.settings
    async with rt.db.read() as r:
        row = await repo.message_of_turn(r, turn_id)
        if row is None:
            return None
        turn = await tasks_repo.turn(r, turn_id)
        worker = await workers_repo.by_id(r, row.worker_id)
        files = (
            [f for f in await tasks_repo.files_of_task(r, turn.task_id) if f.turn_id == turn_id]
            if turn
            else []
        )
    if turn is None or worker is None:
        return None
    if relay_of(settings) is None:
        await _note(turn_id, "not sent", error="KENNEL_SMTP_RELAY is not set")
        return "no relay"
    original = thread_headers(row.raw)
    if turn.status == "completed":
        text = turn.output_text or "(no answer)"
    else:
        text = failed_turn_text(turn.error_message)
    workspace = rt.workspace(worker.id)
    attachments = []
    for file in files:  # whole, in memory: the message is built from bytes
        try:
            data = await workspace.read(file.path)
        except FileNotFoundError:
            continue
        attachments.append(OutgoingFile(file.path, file.media_type, data))
    header_id = new_message_id(settings.mail_domain, key=turn_id)
    reply = build_reply(
        from_address=worker_email(settings, worker),
        from_name=worker.title,
        to=row.sender or row.envelope_from,
        subject=original.subject,
        text=text,
        mail_domain=settings.mail_domain,
        in_reply_to=original.message_id,
        references=original.references,
        attachments=attachments,
        max_attachment_bytes=settings.max_file_bytes,
        message_id=header_id,
    )
    async with rt.db.write() as w:
        await repo.thread(w, worker.id, header_id, turn.task_id)
        await repo.set_reply(w, row.id, "pending", header_id=header_id)
    return reply.message.as_bytes(policy=policy.SMTP)


@DBOS.step(retries_allowed=True, max_attempts=SEND_ATTEMPTS, interval_seconds=2.0, backoff_rate=2.0)
async def _send(raw: bytes) -> None:
    relay = relay_of(runtime.current().settings)
    if relay is None:
        raise RelayError("KENNEL_SMTP_RELAY is not set", temporary=False)
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    try:
        await send(message, relay)
    except RelayError as exc:
        log.warning("sending an answer failed (DBOS retries): %s", exc)
        raise


@DBOS.step(**WHILE_TRANSIENT)
async def _note(turn_id: str, status: str, *, error: str | None = None) -> None:
    """How the answer went: on the message, and in the task's metadata."""
    rt = runtime.current()
    async with rt.db.write() as w:
        row = await repo.message_of_turn(w, turn_id)
        if row is None:
            return
        await repo.set_reply(w, row.id, status, error=error)
        if row.task_id:
            reply: dict[str, Any] = {"status": status, **({"error": error} if error else {})}
            await tasks_repo.merge_trigger(w, row.task_id, {"reply": reply})


register_turn_listener("mail", answer_mail, repo.is_mail_turn)
