"""The places the schedules, webhook and e-mail panels take on the worker page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kennel.auth import Caller
from kennel.core.runtime import Runtime
from kennel.dashboard import panels
from kennel.workers.repository import WorkerRow
from tests.factories import Member, make_member
from tests.factories.dashboard import csrf_of, signed_in_browser
from tests.factories.workers import new_worker_id


async def test_no_panel_without_its_loader(
    app: FastAPI, client: httpx.AsyncClient, member: Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(panels, "WORKER_PANELS", {})
    worker_id = await new_worker_id(client, member)
    async with signed_in_browser(app, member) as browser:
        page = await browser.get(f"/workers/{worker_id}")
    assert page.status_code == 200
    for name in panels.PANEL_NAMES:
        assert f'id="panel-{name}"' not in page.text


async def test_a_registered_panel_gets_its_context(
    app: FastAPI, client: httpx.AsyncClient, member: Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []

    async def email(rt: Runtime, caller: Caller, worker: WorkerRow) -> Mapping[str, Any]:
        seen.append((caller.user_id, worker.id))
        return {"senders": ["from-the-loader@example.com"]}

    async def hidden(rt: Runtime, caller: Caller, worker: WorkerRow) -> None:
        return None

    monkeypatch.setattr(panels, "WORKER_PANELS", {"email": email, "webhook": hidden})
    worker_id = await new_worker_id(client, member)
    async with signed_in_browser(app, member) as browser:
        page = await browser.get(f"/workers/{worker_id}")
    assert page.status_code == 200
    assert seen == [(member.user_id, worker_id)]
    assert 'id="panel-email"' in page.text
    assert "from-the-loader@example.com" in page.text
    assert 'id="panel-webhook"' not in page.text  # its loader had nothing to show
    assert 'id="panel-schedules"' not in page.text  # none registered


async def _panel_posts(
    client: httpx.AsyncClient, owner: Member, worker_id: str
) -> list[tuple[str, dict[str, str]]]:
    """Every form of the three panels, filled in, for one of `owner`'s workers."""
    r = await client.post(
        f"/api/workers/{worker_id}/schedules",
        json={"input": "Keep", "when": {"type": "interval", "intervalSeconds": 3600}},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    schedule = f"/workers/{worker_id}/schedules/{r.json()['id']}"
    made = {
        "input": "Forged",
        "when.type": "delayed",
        "when.delayInSeconds": "5",
        "budget": "standard",
    }
    return [
        (f"/workers/{worker_id}/schedules", {**made, "action": "create"}),
        (f"/workers/{worker_id}/schedules", {**made, "action": "preview"}),
        (f"{schedule}/pause", {}),
        (f"{schedule}/resume", {}),
        (f"{schedule}/run", {}),
        (f"{schedule}/cancel", {}),
        (f"/workers/{worker_id}/webhook", {"url": "https://example.com/forged"}),
        (f"/workers/{worker_id}/webhook/remove", {}),
        (f"/workers/{worker_id}/webhook/token", {}),
        (f"/workers/{worker_id}/webhook/executions/whx_any/redeliver", {}),
        (f"/workers/{worker_id}/email/senders", {"senders": "forger@example.com"}),
    ]


async def _untouched(client: httpx.AsyncClient, owner: Member, worker_id: str) -> None:
    base = f"/api/workers/{worker_id}"
    schedules = (await client.get(f"{base}/schedules", headers=owner.headers)).json()
    assert [(s["input"], s["paused"]) for s in schedules["schedules"]] == [("Keep", False)]
    assert (await client.get(f"{base}/webhook", headers=owner.headers)).json()["url"] is None
    senders = await client.get(f"{base}/email/allowed-senders", headers=owner.headers)
    assert senders.json()["senders"] == []
    tasks = await client.get("/api/tasks", params={"workerId": worker_id}, headers=owner.headers)
    assert tasks.json()["tasks"] == []


async def test_every_panel_form_is_refused_without_the_token(
    app: FastAPI, client: httpx.AsyncClient, member: Member
) -> None:
    worker_id = await new_worker_id(client, member)
    posts = await _panel_posts(client, member, worker_id)
    other = await make_member(app, organization=member.organization)
    async with signed_in_browser(app, other) as theirs:
        foreign_token = csrf_of((await theirs.get("/workers")).text)
    async with signed_in_browser(app, member) as browser:
        for path, data in posts:
            for token in (None, "", "0" * 64, foreign_token):
                body = data if token is None else {**data, "csrf": token}
                r = await browser.post(path, data=body)
                assert r.status_code == 403, (path, token, r.text)
                assert "security token" in r.text
    await _untouched(client, member, worker_id)


async def test_another_organizations_panels_are_404(
    app: FastAPI, client: httpx.AsyncClient, member: Member
) -> None:
    owner = await make_member(app)
    worker_id = await new_worker_id(client, owner, title="Theirs")
    posts = await _panel_posts(client, owner, worker_id)
    async with signed_in_browser(app, member) as browser:
        token = csrf_of((await browser.get("/workers")).text)
        for path, data in posts:
            r = await browser.post(path, data={**data, "csrf": token})
            assert r.status_code == 404, (path, r.text)
            assert "Theirs" not in r.text
    await _untouched(client, owner, worker_id)
