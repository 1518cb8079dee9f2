"""When traces are on, and what DBOS is told then (the spans themselves: tests/e2e/test_traces.py).

No test here installs a tracer provider: OpenTelemetry allows one per process, and it would
turn traces on for every later test of the process."""

from __future__ import annotations

from pathlib import Path

import pytest

from kennel.core import durable
from kennel.core.tracing import tracing_wanted
from tests.conftest import make_settings


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"}, True),
    ],
)
def test_traces_are_wanted_with_an_endpoint_unless_disabled(
    environ: dict[str, str], wanted: bool
) -> None:
    assert tracing_wanted(environ) is wanted


def test_dbos_makes_spans_only_when_traces_are_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}/k.sqlite3", tmp_path)
    assert "enable_otlp" not in durable.config(settings)
    monkeypatch.setattr(durable, "tracing_enabled", lambda: True)
    on = durable.config(settings)
    assert on["enable_otlp"] is True
    # No endpoint of its own: DBOS would add a second exporter to Kennel's provider.
    assert "otlp_traces_endpoints" not in on
    assert "otlp_logs_endpoints" not in on
