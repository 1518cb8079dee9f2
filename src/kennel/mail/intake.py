"""Mail in: who may write to a worker, storing what the listener accepts, and turning a stored
message into a turn, durably.

The SMTP front door (`listener.py`) calls `accept_recipient` at `RCPT TO` and `store` before it
answers 250; `store` keeps the raw message with its envelope in the database and starts the
intake workflow keyed by the stored row (`mail:<id>`). A crash right after the 250 leaves the
row `stored`, and the next start-up starts its workflow; a second front door (a provider's
inbound webhook) would call `store` the same way. The workflow reads the message, decides whether
its sender may use the worker, and starts a task through the same path as `POST /api/tasks`
(`triggeredBy: "email"`), or a follow-up turn of the task a reply belongs to, waiting its turn
while that task runs a turn.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

from dbos import DBOS, SetWorkflowID

from kennel import runtime
from kennel.auth import Caller
from kennel.db import Database, open_database
from kennel.durable import Queue
from kennel.errors import ApiError
from kennel.ids import new_id
from kennel.mail import repository as repo
from kennel.mail.addresses import normalize_address, split_address
from kennel.mail.listener import (
    ACCEPT,
    NO_SUCH_MAILBOX,
    SENDER_REFUSED,
    RcptDecision,
    SmtpListener,
    reachable_from_other_hosts,
)
from kennel.mail.message import InboundMessage, UnreadableMessage, parse_message
from kennel.mail.senders import SenderAuth, check_sender
from kennel.runtime import Runtime
from kennel.settings import Settings
from kennel.tasks import repository as tasks_repo
from kennel.tasks.starting import (
    TurnInFlight,
    TurnRequest,
    Upload,
    enqueue_turn,
    record_turn,
    write_uploads,
)
from kennel.timestamps import utcnow
from kennel.workers.repository import WorkerRow

__all__ = [
    "MAIL_POLLING_SECONDS",
    "MAIL_QUEUE",
    "FrontDoor",
    "accept_recipient",
    "is_allowed",
    "mail_queue",
    "mark_for_replay",
    "replay_workflow_id",
    "resume_intakes",
    "start_intake",
    "store",
    "take_in_mail",
    "wait_for_turn",
]

log = logging.getLogger("kennel.mail")

MAIL_QUEUE = "kennel_mail"  # intakes of stored messages; the CLI's `mail replay` queues here too
# Each poll of a DBOS queue is a transaction of several statements that DBOS builds anew
# (a few ms of CPU): turns are polled every `queue_polling_seconds` for their start latency,
# mail, which is rare and already seconds old when it arrives, less often.
MAIL_POLLING_SECONDS = 0.25


def mail_queue(settings: Settings) -> Queue:
    """The queue of intakes: four at a time, polled at most every `MAIL_POLLING_SECONDS`."""
    return Queue(MAIL_QUEUE, 4, max(settings.queue_polling_seconds, MAIL_POLLING_SECONDS))


_BUSY_WAIT_SECONDS = 5.0
_BUSY_WAITS = 720  # an hour of waiting for the task's turn in flight to end


async def _worker_of(rt: Runtime, address: str) -> tuple[WorkerRow, str | None] | None:
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
    found = await _worker_of(rt, address)
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


async def store(
    rt: Runtime,
    envelope_from: str,
    recipients: list[str],
    raw: bytes,
    peer: str,
    *,
    start: Callable[[str], None],
) -> str:
    """Keep the message (one row per worker it is for), then have each intake started by
    `start(message_id)`, which must not wait for it."""
    rows = []
    for recipient in recipients:
        found = await _worker_of(rt, recipient)
        if found is None:
            continue
        rows.append(
            repo.MessageRow(
                id=new_id("eml"),
                worker_id=found[0].id,
                envelope_from=envelope_from,
                recipient=recipient,
                peer=peer,
                raw=raw,
                status="stored",
                reason=None,
                message_id=None,
                sender=None,
                subject=None,
                task_id=None,
                turn_id=None,
                reply_status=None,
                reply_message_id=None,
                reply_error=None,
                received_at=utcnow(),
            )
        )
    async with rt.db.write() as w:
        for row in rows:
            await repo.insert_message(w, row)
    for row in rows:  # stored: an intake not started is started at the next start-up
        start(row.id)
    return rows[0].id if rows else "none"


async def start_intake(message_id: str, *, attempt: str = "") -> None:
    """Queue the message's intake (idempotent: the workflow id is the message's)."""
    with SetWorkflowID(f"mail:{message_id}{attempt}"):
        await DBOS.enqueue_workflow_async(MAIL_QUEUE, take_in_mail, message_id)


async def mark_for_replay(db: Database, message_id: str) -> bool:
    """Set a kept message back to `stored` (for `kennel mail replay`); False when unknown."""
    async with db.write() as w:
        if await repo.message(w, message_id) is None:
            return False
        await repo.set_outcome(w, message_id, "stored")
    return True


def replay_workflow_id(message_id: str) -> str:
    return f"mail:{message_id}:replay:{new_id('eml')[4:]}"


@DBOS.workflow()
async def take_in_mail(message_id: str) -> str:
    """Read the stored message and start its turn (or refuse it, saying why)."""
    decision = await _decide(message_id)
    if decision["action"] != "start":
        return str(decision["action"])
    outcome = await _start_and_queue(runtime.current(), message_id, decision)
    if outcome != "busy":
        return outcome
    # A reply while its task runs a turn waits for it off the queue: waiting replies would
    # otherwise hold the queue's few slots, and no other mail could become a task meanwhile.
    await DBOS.start_workflow_async(wait_for_turn, message_id, decision)
    return "waiting"


@DBOS.workflow()
async def wait_for_turn(message_id: str, decision: dict[str, Any]) -> str:
    """Start a reply's follow-up turn once its task's turn in flight has ended."""
    for _ in range(_BUSY_WAITS):
        await DBOS.sleep_async(_BUSY_WAIT_SECONDS)
        outcome = await _start_and_queue(runtime.current(), message_id, decision)
        if outcome != "busy":
            return outcome
    await _refuse(message_id, "its task kept running a turn for an hour")
    return "refused"


async def _start_and_queue(rt: Runtime, message_id: str, decision: dict[str, Any]) -> str:
    outcome, turn_id = await _start(message_id, decision)
    if turn_id is not None:  # queued here, not in the step: a step cannot start workflows
        await enqueue_turn(rt, turn_id)
    return outcome


@DBOS.step()
async def _decide(message_id: str) -> dict[str, Any]:
    rt = runtime.current()
    settings = rt.settings
    async with rt.db.read() as r:
        row = await repo.message(r, message_id)
    if row is None:
        return {"action": "gone"}
    worker_found = await _worker_of(rt, row.recipient)
    if worker_found is None:
        return await _refuse(message_id, "the worker no longer exists")
    worker, tag = worker_found
    try:
        message = await _parse(row.raw, row.envelope_from, settings.max_file_bytes)
    except UnreadableMessage as exc:
        return await _refuse(message_id, f"unreadable: {exc}", status="failed")
    if message.is_automatic:
        return await _refuse(message_id, f"automatic mail ({message.automatic}): no task")

    async def allowed(address: str) -> bool:
        return await is_allowed(rt, worker, address)

    check = await check_sender(
        SenderAuth(settings.mail_sender_auth),
        row.raw,
        row.envelope_from,
        is_allowed=allowed,
        authserv_id=settings.mail_authserv_id,
        trusted_received=settings.mail_trusted_received,
    )
    if check.trusted_from is None:
        return await _refuse(message_id, f"sender not trusted: {check.reason}")
    if not await allowed(check.trusted_from):
        return await _refuse(message_id, f"{check.trusted_from} may not write to this worker")
    async with rt.db.read() as r:
        thread_task = await repo.task_of_thread(r, worker.id, message.thread_ids)
        users = await repo.organization_users_with_email(
            r, worker.organization_id, check.trusted_from
        )
        user_id = worker.user_id  # an allow-listed stranger: the task is the worker creator's
        for candidate in users:
            if await repo.visible_to_user(r, worker.id, worker.organization_id, candidate):
                user_id = candidate
                break
    return {
        "action": "start",
        "worker_id": worker.id,
        "organization_id": worker.organization_id,
        "user_id": user_id,
        "sender": check.trusted_from,
        "input": message.task_input or "(empty message)",
        "subject": message.subject,
        "header_id": message.message_id,
        "thread_task": thread_task,
        "tag": tag,
    }


async def _parse(raw: bytes, envelope_from: str, max_file_bytes: int) -> InboundMessage:
    """The message read in a thread: its CPU (bounded by `parse_message`'s limits, up to about
    a second) is not spent on the loop that answers HTTP."""
    return await asyncio.to_thread(
        parse_message, raw, envelope_from=envelope_from, max_attachment_bytes=max_file_bytes
    )


async def _refuse(message_id: str, reason: str, *, status: str = "refused") -> dict[str, Any]:
    rt = runtime.current()
    async with rt.db.write() as w:
        await repo.set_outcome(w, message_id, status, reason=reason)
    log.info("mail %s %s: %s", message_id, status, reason)
    return {"action": status}


@DBOS.step()
async def _start(message_id: str, decision: dict[str, Any]) -> tuple[str, str | None]:
    """Record the turn (and task) and put the attachments in the workspace: the outcome, and
    the turn to queue; "busy" while the task of a reply runs a turn."""
    rt = runtime.current()
    async with rt.db.read() as r:
        row = await repo.message(r, message_id)
        task = (
            await tasks_repo.by_id(r, decision["thread_task"]) if decision["thread_task"] else None
        )
    if row is None:
        return "gone", None
    if row.status == "started":  # a step run again after a crash
        return "started", row.turn_id
    message = await _parse(row.raw, row.envelope_from, rt.settings.max_file_bytes)
    turn = TurnRequest(
        origin="email",
        caller=Caller.acting_for(decision["user_id"], decision["organization_id"], via="mail"),
        input=decision["input"][:100_000],
        worker_id=decision["worker_id"],
        # A reply in the thread of a task still there: a follow-up turn of it.
        task_id=task.public_id if task is not None and task.archived_at is None else None,
        uploads=[Upload(a.filename, a.content) for a in message.attachments],
        trigger={
            "mailMessageId": decision["header_id"],
            "from": decision["sender"],
            **({"tag": decision["tag"]} if decision["tag"] else {}),
        },
    )
    try:
        async with rt.db.write() as w:
            started = await record_turn(w, rt, turn)
            await repo.set_outcome(
                w,
                message_id,
                "started",
                header_id=decision["header_id"],
                sender=decision["sender"],
                subject=decision["subject"],
                task_id=started.task.id,
                turn_id=started.turn.id,
            )
            if decision["header_id"]:
                await repo.thread(w, decision["worker_id"], decision["header_id"], started.task.id)
    except TurnInFlight:
        return "busy", None
    except ApiError as exc:
        await _refuse(message_id, exc.message, status="failed")
        return "failed", None
    await write_uploads(rt, started)
    return "started", started.turn.id


class FrontDoor:
    """The SMTP listener, on an event loop and thread of its own (a `BackgroundService`).

    Taking mail in is cheap (measured here, 230 messages a second from one sender with nothing
    else to do), but on the server's loop it waited behind the turns the mail starts, whose
    model calls and steps come many times a second: 10 messages a second were accepted. On its
    own loop it answers once the message's row is committed; the intake's workflow is queued
    from the server's loop (a message whose intake was not queued before a crash is found
    `stored` at the next start-up). Its database connections are its own (PostgreSQL
    connections belong to one loop); its settings are the server's."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: SmtpListener | None = None
        self._failure: BaseException | None = None
        self._ready = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None
        return self._listener.address

    async def start(self) -> None:
        """Listen; then start the intakes of messages kept but not yet taken in."""
        self._thread = threading.Thread(
            target=self._run, args=(asyncio.get_running_loop(),), name="kennel-smtp", daemon=True
        )
        self._thread.start()
        await asyncio.to_thread(self._ready.wait)
        if self._failure is not None:
            raise self._failure
        await resume_intakes(self._rt)
        settings = self._rt.settings
        if settings.mail_sender_auth == "none" and reachable_from_other_hosts(settings.smtp_host):
            log.warning(
                "the SMTP listener on %s can be reached from other hosts, and "
                "KENNEL_MAIL_SENDER_AUTH=none believes any From: an allowed sender writes: "
                "put it behind your own mail server, or set KENNEL_MAIL_SENDER_AUTH",
                settings.smtp_host,
            )

    async def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 30)

    def _run(self, server_loop: asyncio.AbstractEventLoop) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        db = open_database(self._rt.settings)
        main = self._rt

        def here() -> Runtime:  # the server's settings and model as they are now, this db
            return Runtime(main.settings, db, main.model)

        async def on_rcpt(address: str, mail_from: str) -> RcptDecision:
            return await accept_recipient(here(), address, mail_from)

        async def on_data(envelope_from: str, recipients: list[str], raw: bytes, peer: str) -> str:
            return await store(here(), envelope_from, recipients, raw, peer, start=on_server)

        def on_server(message_id: str) -> None:
            # Queued from the server's loop, so the 250 waits for the message's row only, not
            # for DBOS's write of the workflow (which waited on SQLite's lock behind turns).
            future = asyncio.run_coroutine_threadsafe(start_intake(message_id), server_loop)
            future.add_done_callback(lambda done: _log_failure(done, message_id))

        settings = main.settings
        self._listener = SmtpListener(
            accept_recipient=on_rcpt,
            store=on_data,
            host=settings.smtp_host,
            port=settings.smtp_port,
            max_bytes=settings.mail_max_bytes,
            tls_cert=settings.smtp_tls_cert,
            tls_key=settings.smtp_tls_key,
            hostname=settings.smtp_hostname,
        )
        try:
            loop.run_until_complete(self._listener.start())
        except BaseException as exc:  # told to whoever waits in start()
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._listener.stop())
            loop.run_until_complete(db.dispose())
            loop.close()


def _log_failure(done: concurrent.futures.Future[None], message_id: str) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error(
            "starting the intake of message %s failed; it starts at the next start-up",
            message_id,
            exc_info=done.exception(),
        )


async def resume_intakes(rt: Runtime) -> int:
    """Start the intake of every message still `stored` (idempotent); how many."""
    async with rt.db.read() as r:
        waiting = await repo.stored_ids(r)
    for message_id in waiting:
        await start_intake(message_id)
    return len(waiting)
