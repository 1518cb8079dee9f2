"""`GET /metrics`: who may read it, the formats it speaks, and the queue read at each scrape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import exc as sa_exc

from kennel.core.settings import SettingsError, load_settings
from kennel.metrics.instruments import REGISTRY
from kennel.metrics.scrape import queue_metrics
from kennel.tasks import control
from tests.factories import Member
from tests.tasks.test_control import pending_turn

README = (Path(__file__).parents[2] / "README.md").read_text()
# Family names as the parser gives them: a counter's without its `_total`.
KENNEL_METRICS = {
    f"kennel_{name}"
    for name in (
        "turns_started",
        "turns_ended",
        "turn_duration_seconds",
        "model_request_duration_seconds",
        "tokens",
        "credits",
        "turns_queued",
        "turns_oldest_queued_age_seconds",
        "turns_running",
        "schedule_firings",
        "schedule_lateness_seconds",
        "webhook_deliveries",
        "webhook_delivery_duration_seconds",
        "mail_accepted",
        "mail_refused",
        "mail_intakes",
        "database_errors",
        "http_requests",
        "http_request_duration_seconds",
    )
}


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


class TestAccess:
    async def test_open_without_a_token_set(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"

    async def test_a_token_set_is_asked_for(
        self, client: httpx.AsyncClient, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(metrics_token=SecretStr("s3cret-token"))
        refused = await client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "authentication_error"
        for wrong in ("Bearer s3cret", "Bearer s3cret-token-and-more", "Basic s3cret-token"):
            r = await client.get("/metrics", headers={"Authorization": wrong})
            assert r.status_code == 401, wrong
        r = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert r.status_code == 200

    async def test_an_api_key_is_no_token(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(metrics_token=SecretStr("s3cret-token"))
        assert (await client.get("/metrics", headers=member.headers)).status_code == 401

    def test_an_empty_token_is_refused_at_start_up(self) -> None:
        with pytest.raises(SettingsError, match=r"^invalid setting KENNEL_METRICS_TOKEN: .*empty"):
            load_settings(metrics_token=" ")


class TestFormat:
    async def test_every_kennel_metric_says_what_it_means(self, client: httpx.AsyncClient) -> None:
        found = families((await client.get("/metrics")).text)
        ours = {name: f for name, f in found.items() if name.startswith("kennel_")}
        assert set(ours) == KENNEL_METRICS
        assert [n for n, f in ours.items() if not f.documentation] == []
        assert "process_resident_memory_bytes" in found
        assert not [name for name in found if name.endswith("_created")]

    def test_the_readme_lists_every_one(self) -> None:
        section = README.split("\n### Metrics", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
        assert [name for name in sorted(KENNEL_METRICS) if f"`{name}" not in section] == []

    async def test_openmetrics_when_the_scraper_asks_for_it(
        self, client: httpx.AsyncClient
    ) -> None:
        r = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        assert r.text.endswith("# EOF\n")

    async def test_it_is_documented_under_operations(self, client: httpx.AsyncClient) -> None:
        document = (await client.get("/openapi.json")).json()
        operation = document["paths"]["/metrics"]["get"]
        assert operation["tags"] == ["Operations"]
        assert "text/plain" in operation["responses"]["200"]["content"]


class TestQueue:
    async def test_a_waiting_turn_shows_in_the_next_scrape(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        def queued(text: str) -> float:
            return families(text)["kennel_turns_queued"].samples[0].value

        before = queued((await client.get("/metrics")).text)
        started = await pending_turn(app, client, member)  # recorded, never queued
        text = (await client.get("/metrics")).text
        assert queued(text) == before + 1
        age = families(text)["kennel_turns_oldest_queued_age_seconds"].samples[0].value
        assert age >= 0
        async with app.state.runtime.db.write() as w:
            await control.abort_turn(w, started.turn.id, "Counted.")
        assert queued((await client.get("/metrics")).text) == before

    async def test_a_database_that_does_not_answer_leaves_the_gauges_out(self) -> None:
        labels = {"kind": "transient", "where": "scrape"}
        errors = REGISTRY.get_sample_value("kennel_database_errors_total", labels) or 0.0
        assert await queue_metrics(_Unreachable()) == []  # type: ignore[arg-type]  # a stand-in
        assert REGISTRY.get_sample_value("kennel_database_errors_total", labels) == errors + 1


class _Unreachable:
    """A database whose every connection fails, as one that went away does."""

    @asynccontextmanager
    async def read(self, *, snapshot: bool = True) -> AsyncIterator[None]:
        raise sa_exc.OperationalError("SELECT 1", None, ConnectionRefusedError("refused"))
        yield
