"""A server killed mid-turn finishes the turn after a restart, without redoing finished steps.

The turn fetches a page served here, so it takes two model requests with a tool call between
them. The offline model is slowed down (each answer streams with one-second pauses) and writes
a line to a trace file at the start of every request, so the test can SIGKILL the server while
the second request is in flight: the first request and the page fetch are recorded DBOS steps
by then. After a restart on the same database with the same executor id, DBOS recovers the
turn: the trace and the page server's hit list show what ran again, and what did not.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer, start_live_server
from tests.factories.pages import page_html, serve_page

pytestmark = pytest.mark.e2e

PAGE_TITLE = "Crash Recovery Fixture"
DELAY_SECONDS = 1.0
DEADLINE_SECONDS = 60.0  # each wait below; the whole test takes about 15 s
EXECUTOR_ID = "crash-test-executor"


def trace_lines(trace: Path) -> list[dict[str, Any]]:
    if not trace.exists():
        return []
    return [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]


def sigkill(server: LiveServer) -> None:
    """Kill the server's whole process group at once: no shutdown code runs."""
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    assert server.process.returncode == -signal.SIGKILL


def test_turn_survives_sigkill(empty_database_url: str, tmp_path: Path) -> None:
    database_url = empty_database_url  # its own: the test kills the server that uses it
    began = time.monotonic()
    trace = tmp_path / "model-trace.jsonl"
    env = {
        "KENNEL_OFFLINE_MODEL_DELAY_SECONDS": str(DELAY_SECONDS),
        "KENNEL_OFFLINE_MODEL_TRACE_FILE": str(trace),
        "KENNEL_ALLOW_PRIVATE_FETCH": "true",
        "KENNEL_TASK_WAIT_SECONDS": "0",  # POST answers at once with running: true
        "KENNEL_EXECUTOR_ID": EXECUTOR_ID,  # the same on both starts: the restart recovers
    }
    workdir = tmp_path / "server"
    with serve_page(page_html(PAGE_TITLE)) as page:
        prompt = f"Summarise {page.url} please"
        with start_live_server(workdir, database_url, extra_env=env) as first:
            api_key = first.api_key  # the second start finds it in the database
            with first.http(api_key) as http:
                r = http.post("/api/tasks", json={"input": prompt})
                assert r.status_code == 200, r.text
                started = r.json()
            assert started["running"] is True
            task_id = started["metadata"]["taskId"]
            turn_id = started["metadata"]["turnId"]

            # The first request answered (a web_fetch call), the page was fetched, and the
            # second request has begun: its trace line is written as it starts, and it then
            # streams its answer for a few seconds.
            first.wait_for("the page fetch", lambda: page.requests)
            if not trace_lines(trace):
                pytest.fail(
                    "the offline model answered a request but wrote nothing to"
                    f" KENNEL_OFFLINE_MODEL_TRACE_FILE ({trace}): the setting is not applied"
                )
            first.wait_for("the second model request", lambda: len(trace_lines(trace)) >= 2)
            assert page.requests == ["/page.html"]
            time.sleep(DELAY_SECONDS / 2)
            sigkill(first)
            first_pid = first.process.pid
        (workdir / "server.log").rename(workdir / "first-server.log")
        before_restart = trace_lines(trace)
        assert [line["pid"] for line in before_restart] == [first_pid, first_pid]

        with start_live_server(workdir, database_url, extra_env=env) as second:
            with second.http(api_key) as http:

                def finished() -> dict[str, Any] | None:
                    r = http.get(f"/api/tasks/{task_id}")
                    assert r.status_code == 200, r.text
                    body = r.json()
                    return body if body["task"]["status"] not in ("pending", "running") else None

                done = second.wait_for("the recovered turn to finish", finished)
                worker = http.get(f"/api/workers/{started['id']}").json()
                turns = http.get(f"/api/tasks/{task_id}/turns").json()["items"]
            second_pid = second.process.pid

    # Exactly one turn, completed once, with the answer the uninterrupted turn would give.
    assert done["task"]["status"] == "completed", done
    assert done["task"]["totals"]["turnCount"] == 1
    (turn,) = done["turns"]
    assert turn["id"] == turn_id
    assert turn["status"] == "completed"
    assert turn["error"] is None
    assert turn["outputText"] == f"Done: {prompt}\nweb_fetch: {PAGE_TITLE}"
    assert turn["inputTokens"] > 0
    assert turn["outputTokens"] > 0
    assert turns == done["turns"]
    assert worker["output_text"] == turn["outputText"]
    assert worker["running"] is False
    assert worker["error"] is None
    assert [s["url"] for s in worker["sources"]] == [page.url]
    calls = [
        part
        for message in worker["messages"]
        for part in message["parts"]
        if part["type"] == "tool-web_fetch"
    ]
    assert len(calls) == 1
    assert calls[0]["output"]["title"] == PAGE_TITLE

    # Not repeated: the page was fetched once, and the second server made only the request
    # that was in flight when the first one died.
    assert page.requests == ["/page.html"]
    lines = trace_lines(trace)
    assert [line["pid"] for line in lines] == [first_pid, first_pid, second_pid]
    assert {line["prompt"] for line in lines} == {prompt}
    assert time.monotonic() - began < 2 * DEADLINE_SECONDS
