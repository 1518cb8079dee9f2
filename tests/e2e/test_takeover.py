"""Two processes on one PostgreSQL: one is killed with turns in flight and never comes back,
and the other finishes every one of them (issue 25, takeover).

Both processes run with the default executor id (unique per process), so DBOS's own recovery
at a restart would never find the dead one's work: only the takeover does. The offline model
is slowed down and writes a line per request (with its pid) to a trace file both processes
share, so the test knows turns were in flight on the first process when it was killed, and
can count the model requests each turn made.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fresh_postgres_database
from tests.e2e.conftest import start_live_server

pytestmark = pytest.mark.e2e

DELAY_SECONDS = 1.0
TASKS = 8
# Documented bound: the takeover after the heartbeat that finds the process gone (same host:
# at once, else KENNEL_TAKEOVER_AFTER_SECONDS), then the rest of the turn (a few seconds here).
DEADLINE_SECONDS = 60.0
# The queues are polled every 30 s here: the taken-over turns end sooner than that only if the
# takeover wakes the live process's runners (`wakeup.ring_all`).
POLL_SECONDS = 30
WOKEN_WITHIN_SECONDS = 20.0


def trace_lines(trace: Path) -> list[dict[str, Any]]:
    if not trace.exists():
        return []
    return [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]


def test_a_killed_processs_turns_finish_on_the_other(tmp_path: Path) -> None:
    trace = tmp_path / "model-trace.jsonl"
    env = {
        "KENNEL_OFFLINE_MODEL_DELAY_SECONDS": str(DELAY_SECONDS),
        "KENNEL_OFFLINE_MODEL_TRACE_FILE": str(trace),
        "KENNEL_TASK_WAIT_SECONDS": "0",  # POST answers at once with running: true
        "KENNEL_HEARTBEAT_SECONDS": "1",
        "KENNEL_QUEUE_POLLING_SECONDS": str(POLL_SECONDS),
    }
    with (
        fresh_postgres_database() as url,
        start_live_server(tmp_path / "first", url, extra_env=env) as first,
        start_live_server(tmp_path / "second", url, extra_env=env) as second,
    ):
        api_key = first.api_key  # the second found a key in the database: it made none
        prompts = [f"Count to {n} please" for n in range(TASKS)]
        with first.http(api_key) as http:
            tasks = []
            for prompt in prompts:
                r = http.post("/api/tasks", json={"input": prompt})
                assert r.status_code == 200, r.text
                tasks.append(r.json()["metadata"]["taskId"])
        first_pid = first.process.pid

        def started_on_first() -> list[str]:
            return [line["prompt"] for line in trace_lines(trace) if line["pid"] == first_pid]

        in_flight = first.wait_for("a turn running on the first process", started_on_first)
        os.killpg(first.process.pid, signal.SIGKILL)  # no shutdown code runs; never restarted
        first.process.wait(timeout=10)
        killed_at = time.monotonic()

        with second.http(api_key) as http:

            def all_ended() -> list[dict[str, Any]] | None:
                found = [http.get(f"/api/tasks/{task_id}").json()["task"] for task_id in tasks]
                ended = [t for t in found if t["status"] not in ("pending", "running")]
                return found if len(ended) == len(found) else None

            ended = second.wait_for(
                "every turn to end on the second process", all_ended, DEADLINE_SECONDS
            )
        took = time.monotonic() - killed_at
        log = second.log_text()

    assert [t["status"] for t in ended] == ["completed"] * TASKS, ended
    assert took < WOKEN_WITHIN_SECONDS, f"{took:.1f} s after the kill: a poll, not a wake-up"
    # The turns in flight on the first process when it died were taken over and finished...
    assert "took over" in log, log[-3000:]
    assert "unfinished workflow" in log
    lines = trace_lines(trace)
    second_pid = second.process.pid
    for prompt in in_flight:
        assert any(line["pid"] == second_pid and line["prompt"] == prompt for line in lines), (
            f"{prompt!r} was not finished by the second process"
        )
    # ...with no model request made more than twice (the one in flight, once more).
    requests = Counter(line["prompt"] for line in lines)
    assert set(requests) == set(prompts)
    assert max(requests.values()) <= 2, requests
