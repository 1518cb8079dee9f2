"""Recording events: what each call counts, and what it refuses to make a series of."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart
from sqlalchemy import exc as sa_exc

from kennel.core import durable
from kennel.metrics import instruments
from kennel.metrics.instruments import REGISTRY


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class TestStatusClass:
    @pytest.mark.parametrize(
        ("status", "expected"),
        [(101, "1xx"), (200, "2xx"), (204, "2xx"), (307, "3xx"), (404, "4xx"), (503, "5xx")],
    )
    def test_a_status_is_its_hundred(self, status: int, expected: str) -> None:
        assert instruments.status_class(status) == expected

    @pytest.mark.parametrize("status", [0, 99, 600, 999])
    def test_a_status_outside_http_is_other(self, status: int) -> None:
        assert instruments.status_class(status) == "other"


class TestDatabaseErrors:
    @pytest.mark.parametrize(
        ("error", "kind"),
        [
            (sa_exc.OperationalError("SELECT 1", None, ConnectionResetError("reset")), "transient"),
            (sqlite3.OperationalError("database is locked"), "transient"),
            (sa_exc.IntegrityError("INSERT", None, sqlite3.IntegrityError("UNIQUE")), "other"),
            (sa_exc.ProgrammingError("SELECT", None, sqlite3.ProgrammingError("no such")), "other"),
        ],
    )
    def test_a_database_error_is_counted_by_kind(self, error: Exception, kind: str) -> None:
        name = "kennel_database_errors_total"
        before = sample(name, kind=kind, where="test")
        assert instruments.record_database_error(error, "test") == kind
        assert sample(name, kind=kind, where="test") == before + 1

    @pytest.mark.parametrize(
        "error", [ValueError("bad"), KeyError("x"), ConnectionResetError("a model provider")]
    )
    def test_an_error_not_of_the_database_is_not_counted(self, error: Exception) -> None:
        before = [
            sample("kennel_database_errors_total", kind=k, where="test")
            for k in ("transient", "other")
        ]
        assert instruments.record_database_error(error, "test") is None
        after = [
            sample("kennel_database_errors_total", kind=k, where="test")
            for k in ("transient", "other")
        ]
        assert after == before

    def test_a_step_counts_the_database_errors_it_retries(self) -> None:
        should_retry = durable.WHILE_TRANSIENT["should_retry"]
        assert should_retry is not None
        name = "kennel_database_errors_total"
        before = sample(name, kind="transient", where="step")
        lost = sa_exc.OperationalError("SELECT 1", None, ConnectionResetError("reset"))
        assert should_retry(lost) is True
        assert should_retry(ValueError("a bug")) is False
        assert sample(name, kind="transient", where="step") == before + 1


class TestModelRequests:
    def test_each_timed_response_is_observed_once(self) -> None:
        name = "kennel_model_request_duration_seconds"
        count, total = sample(f"{name}_count"), sample(f"{name}_sum")
        timed = ModelResponse(parts=[TextPart("hi")])
        timed.duration = timedelta(seconds=0.25)
        untimed = ModelResponse(parts=[TextPart("replayed")])  # a response with no duration
        request = ModelRequest(parts=[UserPromptPart("hello")])
        assert instruments.record_model_requests([request, timed, untimed]) == 1
        assert sample(f"{name}_count") == count + 1
        assert sample(f"{name}_sum") == pytest.approx(total + 0.25)
        bucket = sample(f"{name}_bucket", le="0.25")
        assert bucket >= 1


class TestTurnEnd:
    def test_a_turn_that_ran_here_counts_its_time_tokens_and_credits(self) -> None:
        ended = sample("kennel_turns_ended_total", status="error", error_code="budget_exceeded")
        inputs, credits = (
            sample("kennel_tokens_total", kind="input"),
            sample("kennel_credits_total"),
        )
        runs = sample("kennel_turn_duration_seconds_count", status="error")
        instruments.record_turn_end(
            "error", "budget_exceeded", seconds=2.0, input_tokens=10, output_tokens=3, credits=4
        )
        assert (
            sample("kennel_turns_ended_total", status="error", error_code="budget_exceeded")
            == ended + 1
        )
        assert sample("kennel_turn_duration_seconds_count", status="error") == runs + 1
        assert sample("kennel_tokens_total", kind="input") == inputs + 10
        assert sample("kennel_credits_total") == credits + 4

    def test_an_aborted_turn_counts_without_a_duration(self) -> None:
        ended = sample("kennel_turns_ended_total", status="aborted", error_code="aborted")
        runs = sample("kennel_turn_duration_seconds_count", status="aborted")
        instruments.record_turn_end("aborted", "aborted")
        assert (
            sample("kennel_turns_ended_total", status="aborted", error_code="aborted") == ended + 1
        )
        assert sample("kennel_turn_duration_seconds_count", status="aborted") == runs


class TestOthers:
    def test_a_method_a_client_made_up_is_other(self) -> None:
        name = "kennel_http_requests_total"
        before = sample(name, method="other", route="/x", status_class="4xx")
        instruments.record_http_request("BREW", "/x", 405, 0.001)
        assert sample(name, method="other", route="/x", status_class="4xx") == before + 1
        assert (
            REGISTRY.get_sample_value(
                name, {"method": "BREW", "route": "/x", "status_class": "4xx"}
            )
            is None
        )

    def test_a_firing_early_by_the_clock_is_not_late(self) -> None:
        name = "kennel_schedule_lateness_seconds"
        total, zero = sample(f"{name}_sum"), sample(f"{name}_bucket", le="0.01")
        instruments.record_firing("started", -0.5)  # another host's clock, a little ahead
        assert sample(f"{name}_sum") == pytest.approx(total)
        assert sample(f"{name}_bucket", le="0.01") == zero + 1

    def test_an_attempt_cut_off_has_no_duration(self) -> None:
        name = "kennel_webhook_delivery_duration_seconds_count"
        unknown = sample("kennel_webhook_deliveries_total", outcome="unknown")
        timed = sample(name, outcome="unknown")
        instruments.record_webhook_delivery("unknown", 0)
        assert sample("kennel_webhook_deliveries_total", outcome="unknown") == unknown + 1
        assert sample(name, outcome="unknown") == timed == 0
