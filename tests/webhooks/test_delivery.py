"""The webhook API and deliveries from the real app to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import standardwebhooks
from dbos import DBOS
from fastapi import FastAPI

from kennel import __version__
from kennel.agents import OfflineModel
from kennel.tasks import listeners
from kennel.tasks.workflows import finish_abandoned_turns
from kennel.webhooks import service as webhooks_service
from kennel.webhooks import verify, workflows
from tests.factories import Member
from tests.factories.polling import eventually
from tests.factories.receiver import Answer, Receiver
from tests.factories.tasks import post_task
from tests.factories.workers import new_worker_id

FAST = (0.0, 0.3, 0.3, 0.3)  # the retry schedule of these tests: four attempts, quickly


class _Paths(dict[str, str]):
    """Receiver paths unique to one test (the receiver outlives the backends' runs)."""

    def __missing__(self, name: str) -> str:
        self[name] = f"/{name}-{secrets.token_hex(4)}"
        return self[name]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_paths() -> None:
    P.clear()


P = _Paths()


@pytest.fixture
def private_webhooks(reconfigure: Callable[..., None]) -> None:
    reconfigure(allow_private_webhooks=True, webhook_retry_schedule=FAST)


async def set_hook(
    client: httpx.AsyncClient, member: Member, worker_id: str, url: Any
) -> httpx.Response:
    return await client.put(
        f"/api/workers/{worker_id}/webhook", json={"url": url}, headers=member.headers
    )


async def executions(client: httpx.AsyncClient, member: Member, worker_id: str) -> list[dict]:
    r = await client.get(f"/api/workers/{worker_id}/webhook/executions", headers=member.headers)
    assert r.status_code == 200, r.text
    return r.json()["logs"]


async def arrived(receiver: Receiver, count: int, path: str) -> list[Any]:
    return await asyncio.to_thread(receiver.wait_for, count, 20.0, path)


async def logged(
    client: httpx.AsyncClient, member: Member, worker_id: str, count: int
) -> list[dict]:
    deadline = time.monotonic() + 20
    while len(found := await executions(client, member, worker_id)) < count:
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)
    return found


class TestEndpoints:
    async def test_set_keep_regenerate_and_remove(
        self, client: httpx.AsyncClient, member: Member, private_webhooks: None, receiver: Receiver
    ) -> None:
        worker_id = await new_worker_id(client, member)
        url = f"/api/workers/{worker_id}/webhook"
        assert (await client.get(url, headers=member.headers)).json() == {
            "url": None,
            "token": None,
        }
        r = await client.post(f"{url}/regenerate-token", headers=member.headers)
        assert r.status_code == 404
        first = (await set_hook(client, member, worker_id, receiver.url(P["a"]))).json()
        assert first["url"] == receiver.url(P["a"])
        assert first["token"].startswith("whk_")
        assert len(first["token"]) >= 47
        second = (await set_hook(client, member, worker_id, receiver.url(P["b"]))).json()
        assert second["token"] == first["token"]  # a new URL keeps the token
        rotated = (await client.post(f"{url}/regenerate-token", headers=member.headers)).json()
        assert rotated["url"] == receiver.url(P["b"])
        assert rotated["token"] != first["token"]
        assert (await client.get(url, headers=member.headers)).json() == rotated
        gone = await client.delete(url, headers=member.headers)
        assert gone.json() == {"url": None, "token": None}
        assert (await client.get(url, headers=member.headers)).json() == {
            "url": None,
            "token": None,
        }
        again = (await set_hook(client, member, worker_id, receiver.url(P["a"]))).json()
        assert again["token"] not in (first["token"], rotated["token"])  # a cleared token is gone
        assert (await set_hook(client, member, worker_id, None)).json() == {
            "url": None,
            "token": None,
        }

    @pytest.mark.parametrize(
        ("url", "says"),
        [
            ("http://example.com/hook", "https"),
            ("https://user:pw@example.com/hook", "user name or password"),
            ("https://example.com/" + "x" * 2040, "2048"),
            ("hook.example.com/path", "absolute"),
            ("https://127.0.0.1/hook", "loopback"),
            ("https://10.1.2.3/hook", "private"),
            ("https://169.254.169.254/latest/meta-data", "metadata"),
            ("https://169.254.1.1/hook", "link-local"),
            ("https://[::ffff:127.0.0.1]/hook", "loopback"),
            ("https://2130706433/hook", "127.0.0.1"),
            ("https://localhost/hook", "loopback"),
            ("https://no-such-host.invalid/hook", "resolve"),
        ],
    )
    async def test_urls_that_may_not_be_set_are_400_naming_url(
        self, client: httpx.AsyncClient, member: Member, url: str, says: str
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await set_hook(client, member, worker_id, url)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "url"
        assert says in r.json()["error"]["message"]
        assert (
            await client.get(f"/api/workers/{worker_id}/webhook", headers=member.headers)
        ).json()["url"] is None

    async def test_allowed_networks_admit_a_named_private_range(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        from ipaddress import ip_network

        reconfigure(webhook_allowed_networks=(ip_network("10.9.0.0/16"),))
        worker_id = await new_worker_id(client, member)
        assert (
            await set_hook(client, member, worker_id, "https://10.9.1.2/hook")
        ).status_code == 200
        assert (
            await set_hook(client, member, worker_id, "https://10.8.1.2/hook")
        ).status_code == 400

    async def test_executions_pages(self, client: httpx.AsyncClient, member: Member) -> None:
        worker_id = await new_worker_id(client, member)
        url = f"/api/workers/{worker_id}/webhook/executions"
        r = await client.get(url, headers=member.headers)
        assert r.json() == {"logs": [], "page": 1, "pageCount": 1, "totalCount": 0}
        for bad in ("0", "-1", "x"):
            r = await client.get(f"{url}?page={bad}", headers=member.headers)
            assert r.status_code == 400
            assert r.json()["error"]["param"] == "page"


class TestDelivery:
    async def test_a_turn_end_is_delivered_signed(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        private_webhooks: None,
        receiver: Receiver,
    ) -> None:
        worker_id = await new_worker_id(client, member)
        hook = (await set_hook(client, member, worker_id, receiver.url(P["signed"]))).json()
        answer = (await post_task(client, member, input="Hello", workerId=worker_id)).json()
        (delivery,) = await arrived(receiver, 1, P["signed"])
        assert delivery.headers["x-handinger-token"] == hook["token"]
        assert delivery.headers["content-type"] == "application/json"
        assert delivery.headers["user-agent"] == f"Kennel/{__version__}"
        verify(hook["token"], delivery.headers, delivery.body)
        standardwebhooks.Webhook(hook["token"].encode()).verify(delivery.body, delivery.headers)
        event = json.loads(delivery.body)
        assert event["id"] == delivery.headers["webhook-id"]
        assert event["type"] == "task.completed"
        assert event["task"]["id"] == answer["metadata"]["taskId"]
        assert event["task"]["status"] == "completed"
        assert event["turn"]["outputText"] == answer["output_text"]
        assert event["worker"]["id"] == worker_id
        assert event["worker"]["output_text"] == answer["output_text"]
        (logged_attempt,) = await logged(client, member, worker_id, 1)
        assert logged_attempt["requestStatus"] == "success"
        assert logged_attempt["responseStatus"] == 200
        assert logged_attempt["attempt"] == 1
        assert logged_attempt["taskId"] == answer["metadata"]["taskId"]
        assert logged_attempt["taskTitle"] == "Hello"
        assert logged_attempt["url"] == receiver.url(P["signed"])
        assert logged_attempt["responseExcerpt"] == "thanks"
        turn_id = answer["metadata"]["turnId"]
        assert await DBOS.get_workflow_status_async(f"{turn_id}:webhook") is not None
        assert await DBOS.get_workflow_status_async(f"{turn_id}:mail") is None  # not by mail

    @pytest.mark.parametrize("end_step", ["recorded", "not_recorded"])
    async def test_a_turn_recovered_after_its_end_delivers_its_webhook(
        self,
        client: httpx.AsyncClient,
        member: Member,
        private_webhooks: None,
        receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
        end_step: str,
    ) -> None:
        """The process dies between a turn's recorded end and its listeners' start: the turn's
        workflow, run again over its recorded steps as recovery runs it, starts them from what
        the end stored (a listener's start numbered after the agent's steps could not be
        reached again). `not_recorded`: it died after the end committed but before DBOS
        recorded the step that wrote it, which recovery then runs again (and finds the end)."""
        worker_id = await new_worker_id(client, member)
        await set_hook(client, member, worker_id, receiver.url(P["recovered"]))

        async def die_before_starting(turn_id: str, names: Any) -> None:
            pass

        monkeypatch.setattr(listeners, "start_listeners", die_before_starting)
        answer = (await post_task(client, member, input="Hello", workerId=worker_id)).json()
        turn_id = answer["metadata"]["turnId"]
        assert answer["status"] == "completed"
        assert await DBOS.get_workflow_status_async(f"{turn_id}:webhook") is None
        monkeypatch.undo()
        steps = await eventually(  # the answer comes as the end commits, before DBOS records it
            lambda: DBOS.list_workflow_steps_async(turn_id), lambda found: len(found) == 3
        )
        assert [step["function_name"] for step in steps] == [
            "_mark_running",
            "kennel_turn__model.request_stream",
            "_record_outcome",
        ]
        last = max(step["function_id"] for step in steps)
        # From after the last step: every step replayed; from the last: the end's step re-run.
        rerun = await DBOS.fork_workflow_async(
            turn_id, last + 1 if end_step == "recorded" else last
        )
        assert await rerun.get_result() == "completed"
        (delivery,) = await arrived(receiver, 1, P["recovered"])
        assert json.loads(delivery.body)["turn"]["id"] == turn_id

    async def test_archiving_a_running_task_delivers_task_aborted(
        self,
        client: httpx.AsyncClient,
        member: Member,
        private_webhooks: None,
        receiver: Receiver,
        reconfigure: Callable[..., None],
    ) -> None:
        """The archive ends the turn, so it stores and starts the turn's listeners."""
        reconfigure(model=OfflineModel(delay_seconds=30), task_wait_seconds=0)
        worker_id = await new_worker_id(client, member)
        await set_hook(client, member, worker_id, receiver.url(P["aborted"]))
        answer = (await post_task(client, member, input="Hello", workerId=worker_id)).json()
        task_id, turn_id = answer["metadata"]["taskId"], answer["metadata"]["turnId"]
        r = await client.delete(f"/api/tasks/{task_id}", headers=member.headers)
        assert r.json() == {"archived": True}
        (delivery,) = await arrived(receiver, 1, P["aborted"])
        event = json.loads(delivery.body)
        assert event["type"] == "task.aborted"
        assert event["turn"]["id"] == turn_id
        assert await DBOS.get_workflow_status_async(f"{turn_id}:webhook") is not None

    async def test_a_turn_ended_by_the_start_up_sweep_delivers_task_failed(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        private_webhooks: None,
        receiver: Receiver,
        reconfigure: Callable[..., None],
    ) -> None:
        """The sweep that ends turns whose workflow is gone tells their listeners too."""
        reconfigure(model=OfflineModel(delay_seconds=30), task_wait_seconds=0)
        worker_id = await new_worker_id(client, member)
        await set_hook(client, member, worker_id, receiver.url(P["swept"]))
        answer = (await post_task(client, member, input="Hello", workerId=worker_id)).json()
        turn_id = answer["metadata"]["turnId"]
        deadline = time.monotonic() + 10
        while (await DBOS.get_workflow_status_async(turn_id)) is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await DBOS.cancel_workflow_async(turn_id)  # without ending the turn's row
        assert await finish_abandoned_turns(app.state.runtime) >= 1
        (delivery,) = await arrived(receiver, 1, P["swept"])
        event = json.loads(delivery.body)
        assert (event["type"], event["turn"]["id"]) == ("task.failed", turn_id)

    async def test_failures_are_retried_with_the_same_webhook_id(
        self, client: httpx.AsyncClient, member: Member, private_webhooks: None, receiver: Receiver
    ) -> None:
        receiver.script(P["flaky"], [500, Answer(503, headers={"Retry-After": "1"}), 200])
        worker_id = await new_worker_id(client, member)
        await set_hook(client, member, worker_id, receiver.url(P["flaky"]))
        await post_task(client, member, input="Retry me", workerId=worker_id)
        first, second, third = await arrived(receiver, 3, P["flaky"])
        assert (
            first.headers["webhook-id"]
            == second.headers["webhook-id"]
            == third.headers["webhook-id"]
        )
        assert first.body == second.body == third.body
        assert third.at - second.at >= 0.95  # Retry-After: 1 outweighs the 0.3 s of the schedule
        logs = await logged(client, member, worker_id, 3)
        assert [(x["attempt"], x["requestStatus"], x["responseStatus"]) for x in logs] == [
            (3, "success", 200),
            (2, "error", 503),
            (1, "error", 500),
        ]
        assert "500" in logs[2]["errorMessage"]

    async def test_410_stops_the_retries(
        self, client: httpx.AsyncClient, member: Member, private_webhooks: None, receiver: Receiver
    ) -> None:
        receiver.script(P["gone"], [410])
        worker_id = await new_worker_id(client, member)
        await set_hook(client, member, worker_id, receiver.url(P["gone"]))
        await post_task(client, member, input="Anyone?", workerId=worker_id)
        await arrived(receiver, 1, P["gone"])
        await asyncio.sleep(1.2)  # past every retry the schedule would have made
        assert len(receiver.wait_for(1, path=P["gone"])) == len(
            [r for r in receiver if r.path == P["gone"]]
        )
        assert len(await executions(client, member, worker_id)) == 1

    async def test_a_changed_url_stops_the_retries_of_earlier_events(
        self,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
        receiver: Receiver,
    ) -> None:
        reconfigure(allow_private_webhooks=True, webhook_retry_schedule=(0.0, 1.0, 1.0))
        receiver.script(P["old"], [500])
        worker_id = await new_worker_id(client, member)
        await set_hook(client, member, worker_id, receiver.url(P["old"]))
        await post_task(client, member, input="Moving", workerId=worker_id)
        await arrived(receiver, 1, P["old"])
        await set_hook(client, member, worker_id, receiver.url(P["new"]))
        await asyncio.sleep(2.5)  # both retries would have come by now
        assert [r.path for r in receiver if r.path in (P["old"], P["new"])] == [P["old"]]

    async def test_redeliver_sends_the_event_again_as_a_new_attempt(
        self, client: httpx.AsyncClient, member: Member, private_webhooks: None, receiver: Receiver
    ) -> None:
        worker_id = await new_worker_id(client, member)
        await set_hook(client, member, worker_id, receiver.url(P["again"]))
        await post_task(client, member, input="Twice", workerId=worker_id)
        (first,) = await logged(client, member, worker_id, 1)
        r = await client.post(
            f"/api/workers/{worker_id}/webhook/executions/{first['id']}/redeliver",
            headers=member.headers,
        )
        assert r.status_code == 200, r.text
        again = r.json()
        assert (again["attempt"], again["eventId"], again["requestStatus"]) == (
            2,
            first["eventId"],
            "success",
        )
        one, two = await arrived(receiver, 2, P["again"])
        assert one.headers["webhook-id"] == two.headers["webhook-id"] == first["eventId"]
        assert one.body == two.body
        missing = await client.post(
            f"/api/workers/{worker_id}/webhook/executions/whx_nope/redeliver",
            headers=member.headers,
        )
        assert missing.status_code == 404

    async def test_after_rotation_both_tokens_sign_for_the_grace_period(
        self, client: httpx.AsyncClient, member: Member, private_webhooks: None, receiver: Receiver
    ) -> None:
        worker_id = await new_worker_id(client, member)
        old = (await set_hook(client, member, worker_id, receiver.url(P["rotated"]))).json()[
            "token"
        ]
        new = (
            await client.post(
                f"/api/workers/{worker_id}/webhook/regenerate-token", headers=member.headers
            )
        ).json()["token"]
        await post_task(client, member, input="Rotate", workerId=worker_id)
        (delivery,) = await arrived(receiver, 1, P["rotated"])
        assert delivery.headers["x-handinger-token"] == new
        assert len(delivery.headers["webhook-signature"].split(" ")) == 2
        verify(new, delivery.headers, delivery.body)
        verify(old, delivery.headers, delivery.body)

    async def test_an_address_refused_at_send_time_is_an_error_attempt(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        """Accepted while private addresses were allowed; refused when the attempt is made."""
        reconfigure(allow_private_webhooks=True, webhook_retry_schedule=(0.0,))
        worker_id = await new_worker_id(client, member)
        assert (
            await set_hook(client, member, worker_id, "https://localhost:9/hook")
        ).status_code == 200
        reconfigure(allow_private_webhooks=False)
        await post_task(client, member, input="Blocked", workerId=worker_id)
        (attempt,) = await logged(client, member, worker_id, 1)
        assert attempt["requestStatus"] == "error"
        assert attempt["responseStatus"] is None
        assert "loopback" in attempt["errorMessage"]

    async def test_a_worker_without_a_webhook_sends_nothing(
        self, client: httpx.AsyncClient, member: Member, private_webhooks: None
    ) -> None:
        worker_id = await new_worker_id(client, member)
        answer = (await post_task(client, member, input="Quiet", workerId=worker_id)).json()
        await asyncio.sleep(0.3)
        assert await executions(client, member, worker_id) == []
        # Asked first, the listeners were not even started: no workflow for this turn.
        turn_id = answer["metadata"]["turnId"]
        assert await DBOS.get_workflow_status_async(f"{turn_id}:webhook") is None
        assert await DBOS.get_workflow_status_async(f"{turn_id}:mail") is None

    async def test_a_removed_webhook_is_not_asked_to_deliver(
        self, client: httpx.AsyncClient, member: Member, private_webhooks: None, receiver: Receiver
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await set_hook(client, member, worker_id, receiver.url(P["gone"]))
        assert r.status_code == 200, r.text
        r = await client.delete(f"/api/workers/{worker_id}/webhook", headers=member.headers)
        assert r.status_code == 200, r.text
        answer = (await post_task(client, member, input="After", workerId=worker_id)).json()
        await asyncio.sleep(0.3)
        assert [r for r in receiver if r.path == P["gone"]] == []
        assert await executions(client, member, worker_id) == []
        turn_id = answer["metadata"]["turnId"]
        assert await DBOS.get_workflow_status_async(f"{turn_id}:webhook") is None


class _ProcessDied(Exception):
    """Stands for a crash inside a step: the step ends without a recorded answer."""


class TestCrashes:
    async def test_an_attempt_cut_off_by_a_crash_is_logged_and_counted(
        self,
        client: httpx.AsyncClient,
        member: Member,
        private_webhooks: None,
        receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The process dies after the first POST reached the receiver, before its answer was
        recorded. Recovery runs the interrupted step again over the recorded ones (a fork from
        that step, as recovery does): every POST the receiver got is in the log, the cut-off
        one as `unknown`, numbered 1..4, and the event gets no more tries than FAST lists."""
        receiver.script(P["crash"], [500])  # every attempt fails: all the tries are used
        real = workflows.deliver

        async def post_then_die(*args: Any, **kwargs: Any) -> Any:
            await real(*args, **kwargs)
            raise _ProcessDied

        monkeypatch.setattr(workflows, "deliver", post_then_die)
        worker_id = await new_worker_id(client, member)
        await set_hook(client, member, worker_id, receiver.url(P["crash"]))
        answer = (await post_task(client, member, input="Crash", workerId=worker_id)).json()
        delivery = f"{answer['metadata']['turnId']}:webhook"
        deadline = time.monotonic() + 20
        while (status := await DBOS.get_workflow_status_async(delivery)) is None or (
            status.status != "ERROR"
        ):
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.05)
        monkeypatch.setattr(workflows, "deliver", real)
        assert len(await arrived(receiver, 1, P["crash"])) == 1
        steps = await DBOS.list_workflow_steps_async(delivery)
        (cut_off,) = [step for step in steps if step["error"] is not None]
        rerun = await DBOS.fork_workflow_async(delivery, cut_off["function_id"])
        assert await rerun.get_result() == "gave up"
        await asyncio.sleep(0.5)  # longer than FAST's waits: a fifth try would have come
        assert len([r for r in receiver if r.path == P["crash"]]) == len(FAST)
        logs = await logged(client, member, worker_id, len(FAST))
        assert [(x["attempt"], x["outcome"], x["requestStatus"]) for x in reversed(logs)] == [
            (1, "unknown", "error"),
            (2, "error", "error"),
            (3, "error", "error"),
            (4, "error", "error"),
        ]
        assert logs[-1]["errorMessage"] == workflows.UNKNOWN_MESSAGE
        assert logs[-1]["responseStatus"] is None

    async def test_an_attempt_being_sent_is_in_the_dashboard_log_not_the_api(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        private_webhooks: None,
        receiver: Receiver,
    ) -> None:
        """The row is written before the POST: while the receiver takes its time, the attempt
        is `sending` in the worker's log; the API lists it once it has its answer."""
        receiver.script(P["slow"], [Answer(200, delay=1.5)])
        worker_id = await new_worker_id(client, member)
        await set_hook(client, member, worker_id, receiver.url(P["slow"]))
        await post_task(client, member, input="Slow", workerId=worker_id)
        await arrived(receiver, 1, P["slow"])
        rows, total = await webhooks_service.list_executions(
            app.state.runtime.db, member.caller, worker_id, page=1, in_flight=True
        )
        assert ([row.request_status for row in rows], total) == (["sending"], 1)
        assert await executions(client, member, worker_id) == []
        (done,) = await logged(client, member, worker_id, 1)
        assert (done["attempt"], done["outcome"], done["durationMs"] >= 1000) == (
            1,
            "success",
            True,
        )
