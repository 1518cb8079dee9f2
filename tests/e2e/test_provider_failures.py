"""A model provider that fails is in the server's log: one JSON WARNING per failed turn, with
the turn, task, worker, model, error code and cause, and neither the API key nor the prompt.

The real server runs `KENNEL_MODEL=openai:some-model` against `OPENAI_BASE_URL` pointing at a
closed port, then at a local HTTP server that answers HTML instead of JSON (200, then 503).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS, fresh_database
from tests.e2e.conftest import LiveServer, free_port, start_live_server
from tests.factories.receiver import Answer, Receiver

pytestmark = pytest.mark.e2e

HTML = b"<html><body>Bad gateway, says the proxy</body></html>"


def run_failing_turn(server: LiveServer, prompt: str) -> dict[str, Any]:
    """Run a turn on a new worker; the ended turn's ids and error (it must fail)."""
    with server.http(server.api_key) as http:
        worker_id = http.post("/api/workers", json={"title": "Unlucky"}).json()["id"]
        r = http.post("/api/tasks", json={"input": prompt, "workerId": worker_id}, timeout=120)
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["running"] is False, body
    assert body["error"] is not None, body  # the contract's worker: `completed`, with an error
    assert body["metadata"]["taskStatus"] == "error", body
    return {
        "turnId": body["metadata"]["turnId"],
        "taskId": body["metadata"]["taskId"],
        "workerId": worker_id,
        "error": body["error"],
    }


def warning_for(server: LiveServer, turn_id: str) -> dict[str, Any]:
    """The one WARNING line of the turn's end (waited for: it is written as the turn ends)."""

    def found() -> list[dict[str, Any]]:
        entries = [json.loads(line) for line in server.log_text().splitlines()]
        return [e for e in entries if e.get("turnId") == turn_id and e["logger"] == "kennel.tasks"]

    lines = server.wait_for("the turn's log line", found)
    assert len(lines) == 1, lines
    assert lines[0]["level"] == "WARNING", lines[0]
    return lines[0]


def check_line(line: dict[str, Any], turn: dict[str, Any], code: str) -> None:
    assert turn["error"]["code"] == code, turn
    assert line["code"] == code
    assert line["taskId"] == turn["taskId"]
    assert line["workerId"] == turn["workerId"]
    assert line["model"] == "openai:some-model"
    assert line["status"] == "error"
    assert line["error"] == turn["error"]["message"]
    assert turn["turnId"] in line["message"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_provider_failures_are_logged_with_the_turn(backend: str, tmp_path: Path) -> None:
    api_key = f"sk-test-{secrets.token_hex(12)}"
    prompt = f"Say hello to {secrets.token_hex(6)}"  # must not reach the log
    env = {"KENNEL_MODEL": "openai:some-model", "OPENAI_API_KEY": api_key}

    # Nothing listens at the base URL: connection refused.
    closed = {**env, "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}
    with (
        fresh_database(backend, tmp_path / "closed") as url,
        start_live_server(tmp_path / "closed", url, backend=backend, extra_env=closed) as server,
    ):
        turn = run_failing_turn(server, prompt)
        line = warning_for(server, turn["turnId"])
        check_line(line, turn, "model_unavailable")
        assert "Connection refused" in line["cause"], line
        logs = [server.log_text()]

    # A server that answers HTML: as a 200 (no usable answer), then as a 503 (after the
    # provider library's retries, the server failed).
    with (
        Receiver() as provider,
        fresh_database(backend, tmp_path / "html") as url,
        start_live_server(
            tmp_path / "html",
            url,
            backend=backend,
            extra_env={**env, "OPENAI_BASE_URL": provider.url("/v1")},
        ) as server,
    ):
        html = {"Content-Type": "text/html"}
        provider.script("/v1/responses", [Answer(200, HTML, html)])
        turn = run_failing_turn(server, prompt)
        line = warning_for(server, turn["turnId"])
        check_line(line, turn, "model_output_invalid")
        # The provider library found no server-sent events in the HTML: an empty answer.
        assert line["cause"].startswith("ModelEmptyResponseError: "), line

        provider.script("/v1/responses", [Answer(503, HTML, html)])
        turn = run_failing_turn(server, prompt)
        line = warning_for(server, turn["turnId"])
        check_line(line, turn, "model_unavailable")
        assert "503" in line["cause"], line
        assert len(provider.paths()) >= 3, provider.paths()  # the 503 was tried again
        logs.append(server.log_text())

    for text in logs:
        assert api_key not in text
        assert prompt not in text
