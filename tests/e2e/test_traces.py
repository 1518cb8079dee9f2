"""OpenTelemetry traces of the real server, received by an in-process OTLP/HTTP collector.

One trace per request that runs a turn: the request's span (FastAPI's, named after the route
template), the turn's workflow (DBOS's), the agent run, its model requests and its tool call
(pydantic-ai's, GenAI conventions), and the webhook attempt of the turn's end; a schedule's
firing is the parent of its turn. Prompts and answers stay out of the spans by default
(`KENNEL_TRACE_CONTENT`), and so do API keys and webhook tokens.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, fresh_database
from tests.e2e.conftest import LiveServer, start_live_server
from tests.e2e.otlp import OtlpReceiver, Span, otlp_receiver
from tests.e2e.test_crash_recovery import sigkill
from tests.factories.receiver import Receiver

pytestmark = pytest.mark.e2e


def _turn_spans(receiver: OtlpReceiver, turn_id: str) -> list[Span]:
    return [
        s
        for s in receiver.named("run_turn")
        if s.attributes.get("dbos.operation.workflow_id") == turn_id
    ]


def _children(receiver: OtlpReceiver, parent: Span, name: str) -> list[Span]:
    return [s for s in receiver.all() if s.parent_id == parent.span_id and s.name == name]


def _within(receiver: OtlpReceiver, root: Span, name_prefix: str) -> list[Span]:
    """The spans named `name_prefix...` below `root` (at any depth)."""
    return [
        s
        for s in receiver.all()
        if s.name.startswith(name_prefix) and root in receiver.ancestors(s)
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_turn_is_one_trace_from_request_to_tool_call(backend: str, tmp_path: Path) -> None:
    marker = f"zebra{secrets.token_hex(4)}"  # in the prompt: it must not reach a span
    with (
        otlp_receiver() as collector,
        Receiver() as hooks,
        fresh_database(backend, tmp_path) as url,
    ):
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans leave at once, for the test
            "KENNEL_ALLOW_PRIVATE_WEBHOOKS": "true",
            "KENNEL_EXECUTOR_ID": f"traces-{backend}",
        }
        with start_live_server(tmp_path, url, backend=backend, extra_env=env) as server:
            with server.http(server.api_key) as http:
                worker_id = http.post("/api/workers", json={"title": "Traced"}).json()["id"]
                hook = http.put(f"/api/workers/{worker_id}/webhook", json={"url": hooks.url("/t")})
                assert hook.status_code == 200, hook.text
                webhook_token = hook.json()["token"]
                prompt = f"write a file named notes.txt containing {marker}"
                r = http.post("/api/tasks", json={"input": prompt, "workerId": worker_id})
                assert r.status_code == 200, r.text
                turn_id = r.json()["metadata"]["turnId"]
                assert r.json()["status"] == "completed", r.text

                turn = server.wait_for(
                    "the turn's span", lambda: next(iter(_turn_spans(collector, turn_id)), None)
                )
                tool = server.wait_for(
                    "the tool call's span",
                    lambda: next(iter(_within(collector, turn, "execute_tool write_file")), None),
                )
                attempt = server.wait_for(
                    "the webhook attempt's span",
                    lambda: next(iter(collector.named("webhook attempt")), None),
                )
                _check_trace(server, collector, turn, tool, attempt)
                _check_a_firing(server, http, collector, worker_id)
                _check_a_callers_trace_goes_on(server, http, collector, worker_id)

    spans = collector.all()
    for span in spans:
        text = span.text()
        assert marker not in text, f"the prompt is in span {span.name}: {span.attributes}"
        assert server.api_key not in text, span.name
        assert webhook_token not in text, span.name
    assert {s.resource.get("service.name") for s in spans} == {"kennel"}
    assert {s.resource.get("service.instance.id") for s in spans} == {f"traces-{backend}"}


def _check_trace(
    server: LiveServer, collector: OtlpReceiver, turn: Span, tool: Span, attempt: Span
) -> None:
    # The request that made the turn is its parent, in the same trace.
    request = collector.by_id(turn.parent_id)
    assert request is not None, f"the turn's parent {turn.parent_id} was not received"
    assert request.name == "POST /api/tasks"
    assert request.parent_id == ""
    assert request.attributes["http.route"] == "/api/tasks"
    assert request.attributes["http.response.status_code"] == 200
    assert turn.trace_id == request.trace_id
    # pydantic-ai's spans, under the turn: the agent run, its model requests, the tool call.
    (agent,) = _children(collector, turn, "invoke_agent kennel_turn")
    chats = _children(collector, agent, "chat kennel-offline")
    assert len(chats) == 2  # the tool call, then the answer
    assert all(c.attributes["gen_ai.operation.name"] == "chat" for c in chats)
    assert chats[0].attributes["gen_ai.usage.input_tokens"] > 0
    assert tool.parent_id == agent.span_id
    assert tool.attributes["gen_ai.tool.name"] == "write_file"
    # The turn's end is delivered to the webhook: an attempt in the same trace, with its answer.
    assert attempt.trace_id == turn.trace_id
    assert turn in collector.ancestors(attempt)
    assert attempt.attributes["http.response.status_code"] == 200
    assert attempt.attributes["kennel.webhook.outcome"] == "delivered"
    server.wait_for("the request's span", lambda: collector.by_id(request.span_id))


def _check_a_firing(
    server: LiveServer, http: httpx.Client, collector: OtlpReceiver, worker_id: str
) -> None:
    """A schedule's firing is a span, and the turn it starts is its child."""
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    made = http.post(
        f"/api/workers/{worker_id}/schedules",
        json={"input": "Tick", "when": {"type": "scheduled", "date": soon}},
    )
    assert made.status_code == 201, made.text
    schedule_id = made.json()["id"]
    firing = server.wait_for(
        "the firing's span",
        lambda: next(
            (
                s
                for s in collector.named("fire schedule")
                if s.attributes.get("kennel.schedule_id") == schedule_id
            ),
            None,
        ),
    )
    turn_id = firing.attributes["kennel.turn_id"]
    turn = server.wait_for(
        "the fired turn's span", lambda: next(iter(_turn_spans(collector, turn_id)), None)
    )
    assert turn.parent_id == firing.span_id
    assert turn.trace_id == firing.trace_id
    assert firing.parent_id == ""  # the dispatcher's own trace, not some request's


def _check_a_callers_trace_goes_on(
    server: LiveServer, http: httpx.Client, collector: OtlpReceiver, worker_id: str
) -> None:
    """A request with a W3C `traceparent` is a span of the caller's trace."""
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    assert http.get(f"/api/workers/{worker_id}", headers=headers).status_code == 200
    span = server.wait_for(
        "the request's span",
        lambda: next((s for s in collector.all() if s.trace_id == trace_id), None),
    )
    assert span.name == "GET /api/workers/{workerId}"
    assert span.parent_id == parent_id


def test_no_endpoint_no_spans(tmp_path: Path) -> None:
    """Without OTEL_EXPORTER_OTLP_ENDPOINT nothing is sent (to an endpoint named otherwise)."""
    with otlp_receiver() as collector, fresh_database("sqlite", tmp_path) as url:
        # Only the batch delay: were a provider made anyway, the exporter's default endpoint
        # (localhost:4318) would be dialled, not this one, so the log is checked too.
        env = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
        with start_live_server(tmp_path, url, extra_env=env) as server:
            with server.http(server.api_key) as http:
                r = http.post("/api/tasks", json={"input": "write a file named a.txt"})
                assert r.json()["status"] == "completed", r.text
            assert "exporting traces" not in server.log_text()
            assert "traceId" not in server.log_text()
        assert collector.requests == 0


def test_trace_content_puts_prompts_and_tool_arguments_in_the_spans(tmp_path: Path) -> None:
    marker = f"zebra{secrets.token_hex(4)}"
    with otlp_receiver() as collector, fresh_database("sqlite", tmp_path) as url:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "KENNEL_TRACE_CONTENT": "true",
        }
        with start_live_server(tmp_path, url, extra_env=env) as server:
            with server.http(server.api_key) as http:
                prompt = f"write a file named notes.txt containing {marker}"
                r = http.post("/api/tasks", json={"input": prompt})
                assert r.json()["status"] == "completed", r.text
            tool = server.wait_for(
                "the tool call's span",
                lambda: next(iter(collector.named("execute_tool write_file")), None),
            )
    assert marker in tool.text()  # its arguments
    chats = collector.named("chat kennel-offline")
    assert any(marker in chat.text() for chat in chats)  # the prompt sent to the model


def test_a_stopping_server_sends_its_last_spans(tmp_path: Path) -> None:
    """Spans still waiting in the batch when SIGTERM comes are sent before the process ends."""
    with otlp_receiver() as collector, fresh_database("sqlite", tmp_path) as url:
        # Ten minutes: only the flush at shutdown can send them.
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "600000"}
        with start_live_server(tmp_path, url, extra_env=env) as server:
            with server.http(server.api_key) as http:
                r = http.post("/api/tasks", json={"input": "write a file named a.txt"})
                turn_id = r.json()["metadata"]["turnId"]
            assert collector.requests == 0
        # Stopped (start_live_server waits for the process to exit).
    assert _turn_spans(collector, turn_id)
    assert collector.named("execute_tool write_file")
    assert collector.named("POST /api/tasks")


def test_a_turn_recovered_after_sigkill_stays_in_the_requests_trace(
    empty_database_url: str, tmp_path: Path
) -> None:
    """The trace context is kept in DBOS's row: the run after a restart joins the trace."""
    model_log = tmp_path / "model-trace.jsonl"
    with otlp_receiver() as collector:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "KENNEL_OFFLINE_MODEL_DELAY_SECONDS": "1",  # each answer streams for seconds
            "KENNEL_OFFLINE_MODEL_TRACE_FILE": str(model_log),
            "KENNEL_TASK_WAIT_SECONDS": "0",  # POST answers at once with running: true
            "KENNEL_EXECUTOR_ID": "traces-crash-test",  # the same twice: the restart recovers
        }
        workdir = tmp_path / "server"
        with start_live_server(workdir, empty_database_url, extra_env=env) as first:
            api_key = first.api_key
            with first.http(api_key) as http:
                r = http.post("/api/tasks", json={"input": "write a file named a.txt"})
                assert r.json()["running"] is True, r.text
                task_id = r.json()["metadata"]["taskId"]
                turn_id = r.json()["metadata"]["turnId"]
            request = first.wait_for(
                "the request's span", lambda: next(iter(collector.named("POST /api/tasks")), None)
            )
            first.wait_for("the first model request", lambda: model_log.exists())
            sigkill(first)
        assert not _turn_spans(collector, turn_id)  # cut off: it never ended
        (workdir / "server.log").rename(workdir / "first-server.log")
        with start_live_server(workdir, empty_database_url, extra_env=env) as second:
            with second.http(api_key) as http:

                def ended() -> bool:
                    task = http.get(f"/api/tasks/{task_id}").json()["task"]
                    return task["status"] not in ("pending", "running")

                second.wait_for("the recovered turn to end", ended)
            turn = second.wait_for(
                "the recovered turn's span",
                lambda: next(iter(_turn_spans(collector, turn_id)), None),
            )
    assert turn.parent_id == request.span_id
    assert turn.trace_id == request.trace_id
