"""Delivering a turn's end to the worker's webhook: a DBOS workflow per event.

`deliver_turn_event` is the first "turn ended" listener (kennel.tasks.listeners): its id is
`<turn id>:webhook`, so a turn's event is made once however often its end is announced. Each
attempt is a step (what it sent and how it went is recorded in `webhook_executions` as it
ends); the waits between attempts are DBOS's durable sleeps, so retries survive restarts. A
step cut short by a crash runs again after recovery: the event is then delivered once more,
with the same `webhook-id`, which is what receivers de-duplicate on.
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any

from dbos import DBOS, SetWorkflowID

from kennel import __version__
from kennel.core import runtime
from kennel.core.ids import new_id
from kennel.core.timestamps import iso_z, utcnow
from kennel.tasks import repository as tasks_repo
from kennel.tasks.listeners import register_turn_listener
from kennel.tasks.render import task_out, turn_out
from kennel.tasks.state import load_worker_state
from kennel.webhooks import repository as repo
from kennel.webhooks.repository import EventRow, ExecutionRow
from kennel.webhooks.retries import next_delay
from kennel.webhooks.send import deliver
from kennel.webhooks.signing import new_event_id, webhook_headers
from kennel.workers import repository as workers_repo

__all__ = ["EVENT_TYPES", "deliver_turn_event", "redeliver"]

log = logging.getLogger("kennel.webhooks")

EVENT_TYPES = {"completed": "task.completed", "error": "task.failed", "aborted": "task.aborted"}
_RETRY_AFTER_CAP_SECONDS = 3600.0


@DBOS.workflow()
async def deliver_turn_event(turn_id: str) -> str:
    """Make the turn's event (if its worker has a webhook) and deliver it, retrying."""
    event_id = await _make_event(turn_id)
    if event_id is None:
        return "no webhook"
    while True:
        result = await _attempt(event_id)
        if result["delay"] is None:
            return str(result["outcome"])
        await DBOS.sleep_async(result["delay"])


@DBOS.workflow()
async def _redeliver(event_id: str) -> dict[str, Any]:
    result = await _attempt(event_id, retries=False)
    return result


async def redeliver(event_id: str) -> str:
    """Send an event once more, now, as a new attempt; the id of the attempt's execution."""
    with SetWorkflowID(f"redeliver:{event_id}:{new_id('whx')}"):
        handle = await DBOS.start_workflow_async(_redeliver, event_id)
    result: dict[str, Any] = await handle.get_result()
    return str(result["execution_id"])


@DBOS.step()
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


@DBOS.step()
async def _attempt(event_id: str, retries: bool = True) -> dict[str, Any]:
    """One delivery attempt, recorded; when to try again (None: done)."""
    rt = runtime.current()
    settings = rt.settings
    async with rt.db.read() as r:
        event = await repo.event(r, event_id)
        assert event is not None, event_id
        webhook = await repo.by_worker(r, event.worker_id)
        number = await repo.attempts_of(r, event_id) + 1
    if webhook is None or (retries and webhook.version != event.webhook_version):
        # The URL changed or the webhook was removed: this event's retries stop.
        return {"delay": None, "outcome": "stopped: the webhook changed", "execution_id": None}
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
    sent = await deliver(
        webhook.url,
        body,
        headers,
        timeout=settings.webhook_timeout_seconds,
        allow_private=settings.allow_private_webhooks,
        allowed_networks=settings.webhook_allowed_networks,
    )
    execution = ExecutionRow(
        id=new_id("whx"),
        event_id=event.id,
        worker_id=event.worker_id,
        attempt=number,
        url=webhook.url,
        request_status="success" if sent.ok else "error",
        response_status=sent.status,
        error_message=None if sent.ok else (sent.error or f"The endpoint answered {sent.status}."),
        response_excerpt=sent.response_excerpt,
        duration_ms=sent.duration_ms,
        created_at=utcnow(),
        task_id=event.task_id,
        task_title=event.task_title,
    )
    async with rt.db.write() as w:
        await repo.insert_execution(w, execution)
    if sent.ok:
        return {"delay": None, "outcome": "delivered", "execution_id": execution.id}
    if sent.gone or not retries:
        outcome = "gone: the endpoint answered 410" if sent.gone else "failed"
        return {"delay": None, "outcome": outcome, "execution_id": execution.id}
    delay = next_delay(
        settings.webhook_retry_schedule,
        number,
        sent.retry_after_seconds,
        cap=_RETRY_AFTER_CAP_SECONDS,
        rng=random.Random(),
    )
    if delay is None:
        log.warning("webhook event %s: no attempts left after %d", event.id, number)
    return {"delay": delay, "outcome": "gave up", "execution_id": execution.id}


register_turn_listener("webhook", deliver_turn_event, repo.has_webhook_for_turn)
