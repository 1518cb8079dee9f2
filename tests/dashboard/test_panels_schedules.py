"""The worker page's Schedules panel in process: the list, the New schedule form with its
preview, pause/resume, run now, cancel and the run history."""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from kennel.schedules.dispatcher import fire_due
from tests.factories import Member
from tests.factories.dashboard import error_next_to, panel, post_form, signed_in_browser
from tests.factories.workers import new_worker_id


@pytest_asyncio.fixture
async def browser(app: FastAPI, member: Member) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in_browser(app, member) as signed_in:
        yield signed_in


def preview_times(page: str) -> list[str]:
    box = page.split('id="schedule-preview"', 1)[1].split("</ol>", 1)[0]
    return [html.unescape(t) for t in re.findall(r"<li>(.*?)</li>", box)]


async def schedules_of(client: httpx.AsyncClient, member: Member, worker_id: str) -> list[dict]:
    r = await client.get(f"/api/workers/{worker_id}/schedules", headers=member.headers)
    assert r.status_code == 200, r.text
    return r.json()["schedules"]


async def api_schedule(
    client: httpx.AsyncClient, member: Member, worker_id: str, **when: Any
) -> dict:
    r = await client.post(
        f"/api/workers/{worker_id}/schedules",
        json={"input": "From the API", "when": when},
        headers=member.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def submit(
    browser: httpx.AsyncClient, worker_id: str, action: str = "create", **fields: str
) -> httpx.Response:
    """The New schedule form, posted with `fields` (their names as the form's)."""
    data = {"input": "Check the kennel", "budget": "standard", "action": action, **fields}
    page = f"/workers/{worker_id}"
    return await post_form(browser, page, f"/workers/{worker_id}/schedules", data)


def attribute(api_time: str) -> str:
    """An API time as the page's `<time datetime>` (and `data-next-due`) writes it."""
    return datetime.fromisoformat(api_time.replace("Z", "+00:00")).isoformat(timespec="seconds")


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class TestPanel:
    async def test_lists_schedules_with_next_run_and_paused_state(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member)
        page = (await browser.get(f"/workers/{worker_id}")).text
        assert "No schedules." in panel(page, "schedules")
        cron = await api_schedule(
            client, member, worker_id, type="cron", cron="30 7 * * *", timezone="Europe/Berlin"
        )
        hourly = await api_schedule(
            client, member, worker_id, type="interval", intervalSeconds=3600
        )
        r = await client.patch(
            f"/api/workers/{worker_id}/schedules/{hourly['id']}",
            json={"paused": True},
            headers=member.headers,
        )
        assert r.status_code == 200, r.text
        page = (await browser.get(f"/workers/{worker_id}")).text
        shown = panel(page, "schedules")
        one = shown.split(f'id="schedule-{cron["id"]}"')[1].split("</li>\n")[0]
        assert "<code>30 7 * * *</code>" in one
        assert "Europe/Berlin" in one
        assert f'datetime="{attribute(cron["nextRunAt"])}"' in one
        assert "status-paused" not in one
        other = shown.split(f'id="schedule-{hourly["id"]}"')[1].split("</li>\n")[0]
        assert "every 3600 s" in other
        assert "status-paused" in other
        assert "(when resumed)" in other
        assert f'action="/workers/{worker_id}/schedules/{hourly["id"]}/resume"' in other
        assert f'action="/workers/{worker_id}/schedules/{cron["id"]}/pause"' in one
        # The script looks again when the next unpaused one comes due.
        assert f'data-next-due="{attribute(cron["nextRunAt"])}"' in page


class TestCreate:
    async def test_each_kind_from_the_form(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member)
        forms = [
            {"when.type": "cron", "when.cron": "@daily", "when.timezone": "Asia/Tokyo"},
            {"when.type": "interval", "when.intervalSeconds": "3600"},
            {"when.type": "delayed", "when.delayInSeconds": "600"},
            # A browser's datetime-local has no offset: read in the form's time zone.
            {"when.type": "scheduled", "when.date": "2031-06-01T09:30", "when.timezone": ""},
            {
                "when.type": "scheduled",
                "when.date": "2031-06-01T09:30",
                "when.timezone": "America/New_York",
            },
        ]
        for fields in forms:
            r = await submit(browser, worker_id, **fields, budget="low")
            assert r.status_code == 303, r.text
            assert r.headers["location"] == f"/workers/{worker_id}#panel-schedules"
        made = {
            (s["type"], s["nextRunAt"]): s for s in await schedules_of(client, member, worker_id)
        }
        assert len(made) == 5
        by_type = {key[0]: s for key, s in made.items()}
        assert by_type["cron"]["cron"] == "0 0 * * *"
        assert by_type["cron"]["timezone"] == "Asia/Tokyo"
        assert by_type["interval"]["intervalSeconds"] == 3600
        assert by_type["delayed"]["delayInSeconds"] == 600
        assert ("scheduled", "2031-06-01T09:30:00.000Z") in made  # the server's zone: UTC
        assert ("scheduled", "2031-06-01T13:30:00.000Z") in made  # 09:30 in New York (EDT)
        assert {s["budget"] for s in made.values()} == {"low"}
        assert {s["input"] for s in made.values()} == {"Check the kennel"}

    @pytest.mark.parametrize(
        ("fields", "field", "says"),
        [
            ({"when.type": "cron", "when.cron": "61 * * * *"}, "when.cron", "not valid"),
            ({"when.type": "cron", "when.cron": "0 0 * * * *"}, "when.cron", "six fields"),
            (
                {"when.type": "cron", "when.cron": "@daily", "when.timezone": "Mars/Olympus"},
                "when.timezone",
                "IANA",
            ),
            ({"when.type": "interval", "when.intervalSeconds": "5"}, "when.intervalSeconds", "60"),
            ({"when.type": "delayed", "when.delayInSeconds": "soon"}, "when.delayInSeconds", ""),
            ({"when.type": "delayed", "when.delayInSeconds": "0"}, "when.delayInSeconds", ""),
            ({"when.type": "scheduled", "when.date": "2020-01-01T00:00"}, "when.date", "past"),
            ({"when.type": "scheduled", "when.date": "tomorrow"}, "when.date", "date"),
            ({"when.type": "weekly"}, "when.type", "one of"),
            ({"when.type": "delayed", "when.delayInSeconds": "5", "input": ""}, "input", ""),
        ],
    )
    @pytest.mark.parametrize("action", ["create", "preview"])
    async def test_a_refused_field_says_why_next_to_it(
        self,
        client: httpx.AsyncClient,
        member: Member,
        browser: httpx.AsyncClient,
        fields: dict[str, str],
        field: str,
        says: str,
        action: str,
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await submit(browser, worker_id, action, **fields)
        assert r.status_code == 400, r.text
        assert says in error_next_to(r.text, field)
        form = panel(r.text, "schedules").split('id="schedule-form"', 1)[1]
        for name, value in fields.items():  # what was typed is kept
            if name.startswith("when.") and name != "when.type" and value:
                assert f'name="{name}"' in form
                assert f'value="{html.escape(value)}"' in form
        assert 'id="schedule-preview"' not in r.text
        assert await schedules_of(client, member, worker_id) == []

    async def test_past_the_limit_the_panel_says_so(
        self,
        client: httpx.AsyncClient,
        member: Member,
        browser: httpx.AsyncClient,
        reconfigure: Callable[..., None],
    ) -> None:
        reconfigure(max_schedules_per_worker=1)
        worker_id = await new_worker_id(client, member)
        fields = {"when.type": "delayed", "when.delayInSeconds": "600"}
        assert (await submit(browser, worker_id, **fields)).status_code == 303
        r = await submit(browser, worker_id, **fields)
        assert r.status_code == 409, r.text
        assert "KENNEL_MAX_SCHEDULES_PER_WORKER" in error_next_to(r.text, "schedules")
        assert len(await schedules_of(client, member, worker_id)) == 1


class TestPreview:
    async def test_shows_the_next_five_times_and_saves_nothing(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member)
        fields = {"when.type": "cron", "when.cron": "0 9 * * 1-5", "when.timezone": "Europe/Berlin"}
        r = await submit(browser, worker_id, "preview", **fields)
        assert r.status_code == 200, r.text
        times = preview_times(r.text)
        assert len(times) == 5
        assert all(t.endswith("09:00 Europe/Berlin)") for t in times), times
        assert "Not saved yet." in r.text
        form = r.text.split('id="schedule-form"', 1)[1]
        assert 'value="0 9 * * 1-5"' in form  # the form is kept, ready to save
        assert await schedules_of(client, member, worker_id) == []
        # Saved, the schedule is due at exactly those times (the same functions decide).
        assert (await submit(browser, worker_id, **fields)).status_code == 303
        (made,) = await schedules_of(client, member, worker_id)
        detail = await client.get(
            f"/api/workers/{worker_id}/schedules/{made['id']}", headers=member.headers
        )
        upcoming = [
            utc_text(datetime.fromisoformat(t.replace("Z", "+00:00")))
            for t in detail.json()["upcoming"]
        ]
        assert [t.split(" (")[0] for t in times] == upcoming

    async def test_an_interval_and_a_one_shot(
        self,
        client: httpx.AsyncClient,
        member: Member,
        browser: httpx.AsyncClient,
        reconfigure: Callable[..., None],
    ) -> None:
        reconfigure(min_interval_seconds=1)
        worker_id = await new_worker_id(client, member)
        before = datetime.now(UTC).replace(microsecond=0)
        r = await submit(
            browser, worker_id, "preview", **{"when.type": "interval", "when.intervalSeconds": "90"}
        )
        assert r.status_code == 200, r.text
        times = [
            datetime.strptime(t, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
            for t in preview_times(r.text)
        ]
        assert len(times) == 5
        assert before + timedelta(seconds=89) <= times[0] <= before + timedelta(seconds=92)
        assert {(b - a).total_seconds() for a, b in itertools.pairwise(times)} == {90.0}
        r = await submit(
            browser,
            worker_id,
            "preview",
            **{"when.type": "scheduled", "when.date": "2031-06-01T09:30:00Z"},
        )
        assert preview_times(r.text) == ["2031-06-01 09:30:00 UTC"]
        assert "It would run once" in r.text
        assert await schedules_of(client, member, worker_id) == []


class TestActions:
    async def test_pause_resume_run_now_and_cancel(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member)
        made = await api_schedule(client, member, worker_id, type="interval", intervalSeconds=3600)
        base = f"/workers/{worker_id}/schedules/{made['id']}"
        page = f"/workers/{worker_id}"

        async def act(what: str, **data: str) -> list[dict]:
            r = await post_form(browser, page, f"{base}/{what}", data)
            assert r.status_code == 303, r.text
            assert r.headers["location"] == f"/workers/{worker_id}#panel-schedules"
            return await schedules_of(client, member, worker_id)

        assert [s["paused"] for s in await act("pause")] == [True]
        assert [s["paused"] for s in await act("resume")] == [False]
        await act("run")
        runs = await client.get(
            f"/api/workers/{worker_id}/schedules/{made['id']}/runs", headers=member.headers
        )
        (run,) = runs.json()["runs"]
        assert run["outcome"] == "manual"
        shown = panel((await browser.get(page)).text, "schedules")
        assert "Upcoming and runs (1)" in shown
        history = shown.split('class="list runs"', 1)[1]
        assert "manual" in history
        assert f'href="/tasks/{run["taskId"]}"' in history
        # Cancel asks first (the page's script asks in a dialog and confirms): nothing changes.
        asked = await post_form(browser, page, f"{base}/cancel")
        assert asked.status_code == 200
        assert "Cancel this schedule?" in asked.text
        assert f'action="{base}/cancel"' in asked.text
        assert '<input type="hidden" name="confirmed" value="yes">' in asked.text
        assert len(await schedules_of(client, member, worker_id)) == 1
        assert await act("cancel", confirmed="yes") == []
        assert "No schedules." in panel((await browser.get(page)).text, "schedules")
        # Already cancelled: the API's 404, as a page.
        gone = await post_form(browser, page, f"{base}/pause")
        assert gone.status_code == 404

    async def test_a_catch_up_run_shows_what_it_folded_and_who_fired_it(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        browser: httpx.AsyncClient,
        reconfigure: Callable[..., None],
    ) -> None:
        reconfigure(executor_id="kennel-east")
        worker_id = await new_worker_id(client, member)
        made = await api_schedule(client, member, worker_id, type="interval", intervalSeconds=60)
        due = datetime.fromisoformat(made["nextRunAt"].replace("Z", "+00:00"))
        # As after a day and a bit down: one firing for 1,500 due times.
        assert await fire_due(app.state.runtime, due + timedelta(minutes=1499, seconds=30)) >= 1
        shown = panel((await browser.get(f"/workers/{worker_id}")).text, "schedules")
        history = shown.split('class="list runs"', 1)[1]
        assert "caught_up" in history
        assert '<td class="num run-missed">1,499</td>' in history
        assert "<code>kennel-east</code>" in history
