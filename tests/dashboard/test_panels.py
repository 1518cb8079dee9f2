"""The places the schedules, webhook and e-mail panels take on the worker page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kennel.auth import Caller
from kennel.dashboard import panels
from kennel.runtime import Runtime
from kennel.workers.repository import WorkerRow
from tests.factories import Member
from tests.factories.api import new_worker_id
from tests.factories.dashboard import signed_in_browser


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
    assert 'id="panel-webhook"' not in page.text  # its loader had nothing to show
    assert 'id="panel-schedules"' not in page.text  # none registered
