"""Webhooks through the official SDK in strict mode, and a delivery that survives SIGKILL."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import handinger
import httpx
import pytest

from kennel.webhooks import verify
from tests.conftest import BACKENDS, fresh_database
from tests.e2e.conftest import LiveServer, start_live_server
from tests.e2e.test_crash_recovery import sigkill, trace_lines
from tests.factories.receiver import Answer, Receiver

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module", params=BACKENDS)
def hook_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp(f"webhooks-{request.param}")
    env = {"KENNEL_ALLOW_PRIVATE_WEBHOOKS": "true", "KENNEL_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.2"}
    with (
        fresh_database(request.param, workdir) as database_url,
        start_live_server(workdir, database_url, backend=request.param, extra_env=env) as server,
    ):
        yield server


def path() -> str:
    return f"/sdk-{secrets.token_hex(4)}"


def test_every_endpoint_through_the_sdk(hook_server: LiveServer, receiver: Receiver) -> None:
    with hook_server.sdk() as sdk:
        worker = sdk.workers.create(title="Hooked")
        empty = sdk.workers.webhooks.retrieve(worker.id)
        assert (empty.url, empty.token) == (None, None)
        with pytest.raises(handinger.NotFoundError):
            sdk.workers.webhooks.regenerate_token(worker.id)
        target = receiver.url(path())
        hook = sdk.workers.webhooks.update(worker.id, url=target)
        assert hook.url == target
        assert hook.token
        assert sdk.workers.webhooks.retrieve(worker.id) == hook
        rotated = sdk.workers.webhooks.regenerate_token(worker.id)
        assert rotated.token != hook.token
        done = sdk.tasks.create(input="Tell the hook", worker_id=worker.id)
        delivery = receiver.wait_for(1, path=target.removeprefix(receiver.url("")))[0]
        verify(str(rotated.token), delivery.headers, delivery.body)
        assert json.loads(delivery.body)["task"]["id"] == done.metadata["taskId"]
        deadline = time.monotonic() + 20
        while not (logs := sdk.workers.webhooks.list_executions(worker.id)).logs:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert (logs.page, logs.page_count, logs.total_count) == (1, 1, 1)
        (execution,) = logs.logs
        assert execution.request_status == "success"
        assert execution.response_status == 200
        assert execution.task_id == done.metadata["taskId"]
        assert execution.worker_id == worker.id
        assert execution.url == target
        assert sdk.workers.webhooks.list_executions(worker.id, page=2).logs == []
        removed = sdk.workers.webhooks.delete(worker.id)
        assert (removed.url, removed.token) == (None, None)
        assert sdk.workers.webhooks.update(worker.id, url=None).url is None


@pytest.mark.parametrize(
    ("url", "param"),
    [("ftp://example.com/x", "url"), ("https://a@b.example/x", "url"), ("x" * 2049, "url")],
)
def test_validation_errors_through_the_sdk(hook_server: LiveServer, url: str, param: str) -> None:
    with hook_server.sdk() as sdk:
        worker = sdk.workers.create()
        with pytest.raises(handinger.BadRequestError) as info:
            sdk.workers.webhooks.update(worker.id, url=url)
        assert info.value.body["error"]["param"] == param  # type: ignore[index]  # the SDK's body is untyped
        with pytest.raises(handinger.BadRequestError) as info:
            sdk.workers.webhooks.list_executions(worker.id, page=0)
        assert info.value.body["error"]["param"] == "page"  # type: ignore[index]  # as above
        with pytest.raises(handinger.NotFoundError):
            sdk.workers.webhooks.retrieve("wrk_missing")


def test_a_delivery_survives_sigkill_and_the_turn_is_not_run_again(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Killed after the turn ended, while the receiver is still answering the first attempt:
    after a restart the event is delivered with the same webhook-id, every POST the receiver
    got is in the log (the cut-off one as `unknown`) and the tries stay within the schedule."""
    trace = tmp_path / "model-trace.jsonl"
    env = {
        "KENNEL_ALLOW_PRIVATE_WEBHOOKS": "true",
        "KENNEL_EXECUTOR_ID": "webhook-crash-test",
        "KENNEL_OFFLINE_MODEL_TRACE_FILE": str(trace),
        "KENNEL_TASK_WAIT_SECONDS": "0",
        "KENNEL_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.2",
    }
    workdir = tmp_path / "server"
    with Receiver() as receiver:
        receiver.script("/slow", [Answer(500, delay=5), 500, 200])
        with start_live_server(workdir, empty_database_url, extra_env=env) as first:
            api_key = first.api_key
            with first.sdk(api_key) as sdk:
                worker = sdk.workers.create(title="Crash")
                hook = sdk.workers.webhooks.update(worker.id, url=receiver.url("/slow"))
                sdk.tasks.create(input="Deliver me", worker_id=worker.id)
            first.wait_for("the first attempt", lambda: receiver.wait_for(1, 30, "/slow"))
            sigkill(first)  # the receiver is still sleeping on its answer
        (workdir / "server.log").rename(workdir / "first-server.log")
        with start_live_server(workdir, empty_database_url, extra_env=env) as second:
            ready_at = time.time()
            first_try, second_try, last_try = receiver.wait_for(3, 60, "/slow")
            # DBOS's start-up recovery put the delivery back on its queue, whose runner looks
            # at once (it starts rung, and recovery rings it), not at its own look (10 s,
            # `wakeup._RARELY_SECONDS`).
            assert second_try.at - ready_at < 8, second_try.at - ready_at
            with second.sdk(api_key) as sdk:
                deadline = time.monotonic() + 20
                while True:
                    logs = sdk.workers.webhooks.list_executions(worker.id)
                    if any(x.request_status == "success" for x in logs.logs):
                        break
                    assert time.monotonic() < deadline, logs
                    time.sleep(0.1)
                raw = httpx.get(
                    f"{second.base_url}/api/workers/{worker.id}/webhook/executions",
                    headers={"Authorization": f"Bearer {api_key}"},
                )
    assert first_try.headers["webhook-id"] == last_try.headers["webhook-id"]
    assert first_try.body == last_try.body
    verify(str(hook.token), last_try.headers, last_try.body)
    assert len(trace_lines(trace)) == 1  # the turn ran once, before the kill
    assert len(receiver.received) == 3  # the cut-off try, then the schedule's other two
    assert logs.total_count == 3
    assert [(x["attempt"], x["outcome"], x["responseStatus"]) for x in raw.json()["logs"]] == [
        (3, "success", 200),
        (2, "error", 500),
        (1, "unknown", None),
    ]
