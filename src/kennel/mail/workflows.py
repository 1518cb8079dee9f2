"""Turning a stored message into a turn, durably: the intake workflow.

The workflow reads the message, decides whether its sender may use the worker, and starts a
task through the same path as `POST /api/tasks` (`triggeredBy: "email"`), or a follow-up turn
of the task a reply belongs to, waiting its turn while that task runs a turn.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Required, TypedDict

from dbos import DBOS, SetWorkflowID

from kennel.api.errors import ApiError
from kennel.auth import Caller
from kennel.core import runtime, wakeup
from kennel.core.durable import WHILE_TRANSIENT, Queue
from kennel.core.ids import new_id
from kennel.core.runtime import Runtime
from kennel.core.settings import Settings
from kennel.core.timestamps import utcnow
from kennel.mail import repository as repo
from kennel.mail.message import InboundMessage, UnreadableMessage, parse_message
from kennel.mail.policy import is_allowed, worker_of_address
from kennel.mail.senders import SenderAuth, check_sender
from kennel.metrics import record_mail_intake
from kennel.tasks import repository as tasks_repo
from kennel.tasks.starting import (
    TurnInFlight,
    TurnRequest,
    Upload,
    enqueue_turn,
    record_turn,
)

__all__ = [
    "MAIL_QUEUE",
    "mail_queue",
    "queue_stranded_intakes",
    "replay_workflow_id",
    "resume_intakes",
    "start_intake",
    "take_in_mail",
    "wait_for_turn",
]

log = logging.getLogger("kennel.mail")

MAIL_QUEUE = "kennel_mail"  # intakes of stored messages; the CLI's `mail replay` queues here too


# Mail queued by another process reaches this one's runner only when that process is full, is
# gone (its work taken over here wakes the runner at once) or is `kennel mail replay`: polled a
# fifth as often as turns, a second more or less is nothing to an e-mail, and an idle server
# saves a quarter of a percent of a core.
MAIL_POLLING_FACTOR = 5


def mail_queue(settings: Settings) -> Queue:
    """The queue of intakes: four at a time (an intake queued here wakes its runner)."""
    return Queue(MAIL_QUEUE, 4, MAIL_POLLING_FACTOR * settings.queue_polling_seconds)


class Decision(TypedDict, total=False):
    """What `_decide` made of a message (recorded by DBOS): refused, or the turn to start."""

    action: Required[str]  # "start", or why not: "gone", "refused", "failed"
    worker_id: str
    organization_id: str
    user_id: str  # whose the task is
    sender: str  # the trusted From: address
    input: str
    subject: str
    header_id: str | None  # its Message-ID
    thread_task: str | None  # the task of the thread it replies in
    tag: str | None  # the +tag of the address it was sent to


# The message `_decide` read, kept for `_start` of the same intake: a message is parsed once
# (unless the server restarted in between, or many intakes wait at once).
_read: dict[str, InboundMessage] = {}
_READ_KEPT = 16

_BUSY_WAIT_SECONDS = 5.0
_BUSY_WAITS = 720  # an hour of waiting for the task's turn in flight to end


async def start_intake(message_id: str, *, attempt: str = "") -> None:
    """Queue the message's intake (idempotent: the workflow id is the message's)."""
    with SetWorkflowID(f"mail:{message_id}{attempt}"):
        await DBOS.enqueue_workflow_async(MAIL_QUEUE, take_in_mail, message_id)
    wakeup.ring(MAIL_QUEUE)


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
async def wait_for_turn(message_id: str, decision: Decision) -> str:
    """Start a reply's follow-up turn once its task's turn in flight has ended."""
    for _ in range(_BUSY_WAITS):
        await DBOS.sleep_async(_BUSY_WAIT_SECONDS)
        outcome = await _start_and_queue(runtime.current(), message_id, decision)
        if outcome != "busy":
            return outcome
    _read.pop(message_id, None)
    await _refuse(message_id, "its task kept running a turn for an hour")
    return "refused"


async def _start_and_queue(rt: Runtime, message_id: str, decision: Decision) -> str:
    outcome, turn_id = await _start(message_id, decision)
    if turn_id is not None:  # queued here, not in the step: a step cannot start workflows
        await enqueue_turn(rt, turn_id)
    return outcome


@DBOS.step(**WHILE_TRANSIENT)
async def _decide(message_id: str) -> Decision:
    rt = runtime.current()
    settings = rt.settings
    async with rt.db.read() as r:
        row = await repo.message(r, message_id)
    if row is None:
        return {"action": "gone"}
    worker_found = await worker_of_address(rt, row.recipient)
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
    if len(_read) >= _READ_KEPT:
        _read.pop(next(iter(_read)))
    _read[message_id] = message
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


async def _refuse(message_id: str, reason: str, *, status: str = "refused") -> Decision:
    rt = runtime.current()
    async with rt.db.write() as w:
        await repo.set_outcome(w, message_id, status, reason=reason)
    record_mail_intake(status)
    log.info("mail %s %s: %s", message_id, status, reason)
    return {"action": status}


@DBOS.step(**WHILE_TRANSIENT)
async def _start(message_id: str, decision: Decision) -> tuple[str, str | None]:
    """Record the turn (and task) with the attachments in the workspace: the outcome, and the
    turn to queue; "busy" while the task of a reply runs a turn."""
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
    message = _read.get(message_id) or await _parse(
        row.raw, row.envelope_from, rt.settings.max_file_bytes
    )
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
        _read.pop(message_id, None)
        await _refuse(message_id, exc.message, status="failed")
        return "failed", None
    _read.pop(message_id, None)
    record_mail_intake("started")
    return "started", started.turn.id


async def resume_intakes(rt: Runtime, *, grace: timedelta | None = None) -> int:
    """Start the intake of every message still `stored` (idempotent); how many. With
    `grace`, only of those received longer ago: the heartbeat's sweep (`core.takeover`) finds
    a message whose process died between its 250 and queueing its intake."""
    async with rt.db.read() as r:
        waiting = await repo.stored_ids(
            r, received_before=utcnow() - grace if grace is not None else None
        )
    for message_id in waiting:
        await start_intake(message_id)
    return len(waiting)


async def queue_stranded_intakes(rt: Runtime) -> int:
    """The heartbeat's sweep of mail: intakes not queued 10 s after their message came."""
    return await resume_intakes(rt, grace=timedelta(seconds=10))
