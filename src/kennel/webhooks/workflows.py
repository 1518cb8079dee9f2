"""Delivering a turn's end to the worker's webhook: a DBOS workflow per event.

`deliver_turn_event` is the first "turn ended" listener (kennel.tasks.listeners): its id is
`<turn id>:webhook`, so a turn's event is made once however often its end is announced. The
waits between attempts are DBOS's durable sleeps, so retries survive restarts.

Each attempt is three steps, so that the log holds every POST that may have been sent:

- begin writes the attempt's row, `pending`, under an id derived from the workflow id and
  the loop's count; run again after a crash, it finds that row and writes no second.
- send marks the row `sending`, then POSTs. Run again after a crash (DBOS runs a step again
  when it had not finished), it finds the row `sending`: the POST may have gone out, so it is
  not sent again, and the attempt is recorded as `unknown`.
- finish records the answer (status, code, excerpt, duration); run again, it changes nothing.

Which try of the retry schedule an attempt is comes from the workflow's own loop count, which
recovery replays the same way, never from counting rows: an attempt cut off by a crash counts
as one (a failed one), the next waits its turn in the schedule, and an event never gets more
tries than `KENNEL_WEBHOOK_RETRY_SCHEDULE` lists. Receivers de-duplicate on `webhook-id`,
which every attempt of an event carries.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from typing import Any

from dbos import DBOS, SetWorkflowID
from opentelemetry.trace import StatusCode
from sqlalchemy.exc import IntegrityError

from kennel import __version__
from kennel.core import runtime
from kennel.core.causes import is_transient
from kennel.core.durable import WHILE_TRANSIENT
from kennel.core.ids import derived_id, new_id
from kennel.core.timestamps import iso_z, utcnow
from kennel.core.tracing import tracer
from kennel.metrics import record_webhook_delivery
from kennel.tasks import repository as tasks_repo
from kennel.tasks.listeners import register_turn_listener
from kennel.tasks.render import task_out, turn_out
from kennel.tasks.state import load_worker_state
from kennel.webhooks import repository as repo
from kennel.webhooks.repository import EventRow, ExecutionRow, WebhookRow
from kennel.webhooks.retries import next_delay
from kennel.webhooks.send import Attempt, deliver
from kennel.webhooks.signing import new_event_id, webhook_headers
from kennel.workers import repository as workers_repo

__all__ = ["EVENT_TYPES", "UNKNOWN_MESSAGE", "deliver_turn_event", "redeliver"]

log = logging.getLogger("kennel.webhooks")

EVENT_TYPES = {"completed": "task.completed", "error": "task.failed", "aborted": "task.aborted"}
_RETRY_AFTER_CAP_SECONDS = 3600.0


@DBOS.workflow()
async def deliver_turn_event(turn_id: str) -> str:
    """Make the turn's event (if its worker has a webhook) and deliver it, retrying."""
    event_id = await _make_event(turn_id)
    if event_id is None:
        return "no webhook"
    number = 0
    while True:
        number += 1  # the schedule's try: counted here, so recovery counts the same
        result = await _attempt(event_id, number)
        if result["delay"] is None:
            return str(result["outcome"])
        await DBOS.sleep_async(result["delay"])


@DBOS.workflow()
async def _redeliver(event_id: str) -> dict[str, Any]:
    result = await _attempt(event_id, 1, retries=False)
    return result


async def redeliver(event_id: str) -> str | None:
    """Send an event once more, now, as a new attempt; the id of the attempt's execution (None:
    not sent, the webhook is gone)."""
    with SetWorkflowID(f"redeliver:{event_id}:{new_id('whx')}"):
        handle = await DBOS.start_workflow_async(_redeliver, event_id)
    result: dict[str, Any] = await handle.get_result()
    execution_id: str | None = result["execution_id"]
    return execution_id


@DBOS.step(**WHILE_TRANSIENT)
async def _make_event(turn_id: str) -> str | None:
    rt = runtime.current()
    async with rt.db.write() as w:
        turn = await tasks_repo.turn(w, turn_id)
        task = await tasks_repo.by_id(w, turn.task_id) if turn is not None else None
        if turn is None or task is None or turn.status not in EVENT_TYPES:
            return None
        webhook = await repo.by_worker(w, task.worker_id)
        if webhook is None:
            return None
        found = await repo.event_of_turn(w, task.worker_id, turn_id)
        if found is not None:  # a step run again after a crash: the event is made already
            return found.id
        worker = await workers_repo.by_id(w, task.worker_id)
        assert worker is not None
        files = [f for f in await tasks_repo.files_of_task(w, task.id) if f.turn_id == turn.id]
        state = await load_worker_state(w, rt.settings, worker, task_id=task.id)
        event_id = new_event_id()
        created = utcnow()
        event_type = EVENT_TYPES[turn.status]
        body = {
            "id": event_id,
            "type": event_type,
            "createdAt": iso_z(created),
            "task": task_out(rt.settings, task).model_dump(mode="json", by_alias=True),
            "turn": turn_out(rt.settings, task, turn, files).model_dump(mode="json", by_alias=True),
            "worker": state.model_dump(mode="json", by_alias=True),
        }
        await repo.insert_event(
            w,
            EventRow(
                id=event_id,
                worker_id=task.worker_id,
                turn_id=turn_id,
                type=event_type,
                body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                webhook_version=webhook.version,
                task_id=task.public_id,
                task_title=task.title,
                created_at=created,
            ),
        )
    return event_id


UNKNOWN_MESSAGE = (
    "No answer recorded: the process stopped while this attempt was being sent; the endpoint "
    "may or may not have received it."
)


async def _attempt(event_id: str, number: int, retries: bool = True) -> dict[str, Any]:
    """The `number`th try of the event, recorded before and after it is sent; when to try
    again (`delay` None: done)."""
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    # A span per attempt, around its three steps (DBOS's spans, when traces are on); a
    # recovered workflow replays the finished steps, so an attempt may show twice, briefly.
    attributes: dict[str, str | int] = {
        "kennel.webhook.event_id": event_id,
        "kennel.webhook.attempt": number,
    }
    with tracer().start_as_current_span("webhook attempt", attributes=attributes) as span:
        # The id comes back from the step: a workflow forked from a later step goes on with
        # the rows of the one it was forked from.
        execution_id = await _begin_attempt(
            event_id, derived_id("whx", f"{workflow_id}:{number}"), retries
        )
        if execution_id is None:
            span.set_attribute("kennel.webhook.outcome", "stopped")
            return {"delay": None, "outcome": "stopped: the webhook changed", "execution_id": None}
        span.set_attribute("kennel.webhook.execution_id", execution_id)
        sent = await _send_attempt(event_id, execution_id, retries)
        if isinstance(sent.get("status"), int):  # the URL stays out: it may hold a secret
            span.set_attribute("http.response.status_code", sent["status"])
        result = await _finish_attempt(event_id, execution_id, number, sent, retries)
        again = result["delay"] is not None  # its outcome says "gave up" until the last
        span.set_attribute("kennel.webhook.outcome", "retrying" if again else result["outcome"])
        if not sent.get("ok"):
            span.set_status(StatusCode.ERROR, str(sent.get("error") or sent["sent"])[:200])
        return result


@DBOS.step(
    retries_allowed=True,
    interval_seconds=0.05,
    backoff_rate=2.0,
    max_attempts=16,  # 0.05 s to half an hour apart
    # A redelivery took the number, or the database failed for a while.
    should_retry=lambda exc: isinstance(exc, IntegrityError) or is_transient(exc),
)
async def _begin_attempt(event_id: str, execution_id: str, retries: bool) -> str | None:
    """Write the attempt as `pending`, numbered after the event's latest; its id (None: not
    to be sent, the webhook changed or is gone)."""
    rt = runtime.current()
    async with rt.db.write() as w:
        event = await repo.event(w, event_id)
        assert event is not None, event_id
        found = await repo.execution(w, event.worker_id, execution_id)
        if found is not None:  # this step ran before, and stopped before DBOS recorded it
            return found.id
        webhook = await repo.by_worker(w, event.worker_id)
        if _stopped(webhook, event, retries):
            return None
        assert webhook is not None
        await repo.begin_execution(
            w,
            ExecutionRow(
                id=execution_id,
                event_id=event.id,
                worker_id=event.worker_id,
                attempt=0,
                url=webhook.url,
                request_status="pending",
                response_status=None,
                error_message=None,
                response_excerpt="",
                duration_ms=0,
                created_at=utcnow(),
                task_id=event.task_id,
                task_title=event.task_title,
            ),
        )
    return execution_id


@DBOS.step()
async def _send_attempt(event_id: str, execution_id: str, retries: bool) -> dict[str, Any]:
    """Mark the attempt as being sent, then POST; how it went (`sent`: "claimed"), or why it
    was not sent: "cut_off" (a run of this step before stopped mid-way), "stopped" (the
    webhook changed since the attempt was written), "gone" (finished already)."""
    rt = runtime.current()
    settings = rt.settings
    async with rt.db.write() as w:
        event = await repo.event(w, event_id)
        assert event is not None, event_id
        row = await repo.execution(w, event.worker_id, execution_id)
        webhook = await repo.by_worker(w, event.worker_id)
        if row is None or row.request_status in repo.FINISHED:
            return {"sent": "gone"}
        if row.request_status == "sending":
            return {"sent": "cut_off"}
        if _stopped(webhook, event, retries) or webhook is None or webhook.url != row.url:
            await repo.drop_execution(w, execution_id)
            return {"sent": "stopped"}
        if await repo.claim_execution(w, execution_id) != "claimed":
            return {"sent": "gone"}
    now = utcnow()
    tokens = [webhook.token]
    if (
        webhook.previous_token
        and webhook.previous_token_until
        and webhook.previous_token_until > now
    ):
        tokens.append(webhook.previous_token)
    body = event.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"Kennel/{__version__}",
        "X-Handinger-Token": webhook.token,
        **webhook_headers(event.id, body, tokens),
    }
    attempt = await deliver(
        webhook.url,
        body,
        headers,
        timeout=settings.webhook_timeout_seconds,
        allow_private=settings.allow_private_webhooks,
        allowed_networks=settings.webhook_allowed_networks,
    )
    return {"sent": "claimed", **dataclasses.asdict(attempt)}


@DBOS.step(**WHILE_TRANSIENT)
async def _finish_attempt(
    event_id: str, execution_id: str, number: int, sent: dict[str, Any], retries: bool
) -> dict[str, Any]:
    """Record how the attempt went; when to try again (None: done)."""
    rt = runtime.current()
    settings = rt.settings
    how = sent["sent"]
    if how in ("stopped", "gone"):
        return {"delay": None, "outcome": "stopped: the webhook changed", "execution_id": None}
    if how == "cut_off":
        attempt = Attempt(False, None, UNKNOWN_MESSAGE, "", 0, None, False)
        status = "unknown"
    else:
        attempt = Attempt(**{k: v for k, v in sent.items() if k != "sent"})
        status = "success" if attempt.ok else "error"
    async with rt.db.write() as w:
        await repo.finish_execution(
            w,
            execution_id,
            request_status=status,
            response_status=attempt.status,
            error_message=None
            if attempt.ok
            else (attempt.error or f"The endpoint answered {attempt.status}."),
            response_excerpt=attempt.response_excerpt,
            duration_ms=attempt.duration_ms,
        )
    record_webhook_delivery(status, attempt.duration_ms)
    if status == "unknown":
        log.warning("webhook event %s: attempt %d was cut off by a stop", event_id, number)
    if attempt.ok:
        return {"delay": None, "outcome": "delivered", "execution_id": execution_id}
    if attempt.gone or not retries:
        outcome = "gone: the endpoint answered 410" if attempt.gone else "failed"
        return {"delay": None, "outcome": outcome, "execution_id": execution_id}
    delay = next_delay(
        settings.webhook_retry_schedule,
        number,
        attempt.retry_after_seconds,
        cap=_RETRY_AFTER_CAP_SECONDS,
        rng=random.Random(),
    )
    if delay is None:
        log.warning("webhook event %s: no attempts left after %d", event_id, number)
    return {"delay": delay, "outcome": "gave up", "execution_id": execution_id}


def _stopped(webhook: WebhookRow | None, event: EventRow, retries: bool) -> bool:
    """The URL changed or the webhook was removed: this event's retries stop."""
    return webhook is None or (retries and webhook.version != event.webhook_version)


register_turn_listener("webhook", deliver_turn_event, repo.has_webhook_for_turn)
