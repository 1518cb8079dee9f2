"""Each domain records its events where they happen: a turn that fails, a turn aborted, a
firing that fails, counted once each, by the app that runs them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from pydantic_ai.models.function import FunctionModel

from kennel.metrics.instruments import REGISTRY
from kennel.schedules.dispatcher import fire_due, firing_task_id
from tests.factories import Member
from tests.factories.polling import eventually
from tests.factories.tasks import post_task
from tests.factories.workers import new_worker_id
from tests.schedules.test_dispatcher import hourly_schedule, make_due, runs_of
from tests.tasks.test_control import pending_turn
from tests.tasks.test_workflows import rate_limited, rate_limited_stream


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_failed_turn_is_counted_by_its_code_with_its_duration(
    client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
) -> None:
    limited = {"status": "error", "error_code": "model_rate_limited"}
    ended = sample("kennel_turns_ended_total", **limited)
    timed = sample("kennel_turn_duration_seconds_count", status="error")
    reconfigure(
        model=FunctionModel(rate_limited, stream_function=rate_limited_stream, model_name="x")
    )
    worker_id = await new_worker_id(client, member)
    r = await post_task(client, member, input="Count the dogs", workerId=worker_id)
    assert r.status_code == 200, r.text
    assert r.json()["error"]["code"] == "model_rate_limited"
    # Counted once DBOS has recorded the end: a moment after the answer.
    await eventually(
        lambda: sample("kennel_turns_ended_total", **limited), lambda n: n == ended + 1
    )
    assert sample("kennel_turn_duration_seconds_count", status="error") == timed + 1


async def test_an_archived_tasks_turn_is_counted_aborted(
    app: FastAPI, client: httpx.AsyncClient, member: Member
) -> None:
    aborted = {"status": "aborted", "error_code": "aborted"}
    before = sample("kennel_turns_ended_total", **aborted)
    started = await pending_turn(app, client, member)  # recorded, never queued
    r = await client.delete(f"/api/tasks/{started.task.public_id}", headers=member.headers)
    assert r.status_code == 200, r.text
    assert sample("kennel_turns_ended_total", **aborted) == before + 1


async def test_a_firing_is_counted_by_outcome_with_its_lateness(
    app: FastAPI, client: httpx.AsyncClient, member: Member
) -> None:
    failed = sample("kennel_schedule_firings_total", outcome="failed")
    late = sample("kennel_schedule_lateness_seconds_sum")
    worker_id = await new_worker_id(client, member)
    schedule_id = await hourly_schedule(client, member, worker_id)
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    taken = firing_task_id(schedule_id, due)  # the firing's task id, taken: it fails
    r = await post_task(client, member, input="Mine", workerId=worker_id, taskId=taken)
    assert r.status_code == 200, r.text
    await make_due(app, schedule_id, due)
    await fire_due(app.state.runtime, datetime.now(UTC))  # or the app's dispatcher does first
    (run,) = await eventually(lambda: runs_of(client, member, worker_id, schedule_id))
    assert run["outcome"] == "failed"
    assert sample("kennel_schedule_firings_total", outcome="failed") == failed + 1
    assert sample("kennel_schedule_lateness_seconds_sum") >= late + 30
