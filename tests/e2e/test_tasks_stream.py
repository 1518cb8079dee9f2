"""`POST /api/tasks` with `stream: true` read over TCP from a live `kennel serve`.

The in-process tests (tests/tasks/test_streaming.py) check what a stream holds; these check that
it arrives as the turn runs, and that a client hanging up does not stop the turn.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, fresh_database
from tests.e2e.conftest import LiveServer, start_live_server

pytestmark = pytest.mark.e2e

DONE = "[DONE]"
DELAY_SECONDS = 0.5  # the slow server's offline model pauses this long before each chunk


@pytest.fixture(scope="module", params=BACKENDS)
def slow_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live server whose offline model pauses before each chunk it streams."""
    workdir = tmp_path_factory.mktemp(f"kennel-slow-{request.param}")
    extra = {"KENNEL_OFFLINE_MODEL_DELAY_SECONDS": str(DELAY_SECONDS)}
    with (
        fresh_database(request.param, workdir) as database_url,
        start_live_server(workdir, database_url, backend=request.param, extra_env=extra) as server,
    ):
        yield server


def new_worker(http: httpx.Client) -> str:
    r = http.post("/api/workers", json={})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def sse_lines(response: httpx.Response) -> Iterator[tuple[float, Any]]:
    """(arrival time, payload) of each `data:` line, as the lines come in."""
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    for line in response.iter_lines():
        if not line:
            continue
        assert line.startswith("data: "), line
        data = line.removeprefix("data: ")
        yield time.monotonic(), DONE if data == DONE else json.loads(data)


def kind(payload: Any) -> str:
    return payload if isinstance(payload, str) else payload["type"]


def only_task(http: httpx.Client, worker_id: str) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tasks = http.get("/api/tasks", params={"workerId": worker_id}).json()["tasks"]
        if tasks:
            (task,) = tasks
            return task
        time.sleep(0.05)
    pytest.fail(f"no task appeared on {worker_id}")


def error_lines(server: LiveServer) -> list[str]:
    return [
        line
        for line in server.log_text().splitlines()
        if line.startswith("{") and json.loads(line).get("level") in ("ERROR", "CRITICAL")
    ]


def test_event_sequence(live_server: LiveServer) -> None:
    prompt = "Fetch nothing and greet the whole pack politely"
    with live_server.http(live_server.api_key) as http:
        worker_id = new_worker(http)
        body = {"input": prompt, "workerId": worker_id, "stream": True}
        with http.stream("POST", "/api/tasks", json=body) as response:
            events = [payload for _, payload in sse_lines(response)]
        kinds = [kind(e) for e in events]
        assert kinds[:3] == ["start", "start-step", "text-start"]
        assert kinds[-4:] == ["text-end", "finish-step", "finish", DONE]
        deltas = [e for e in events if kind(e) == "text-delta"]
        assert set(kinds[3:-4]) == {"text-delta"}
        assert len(deltas) >= 3  # the offline model streams three words a chunk
        assert {d["id"] for d in deltas} == {events[2]["id"]}
        answer = "".join(d["delta"] for d in deltas)
        assert answer == f"Done: {prompt}"

        task = only_task(http, worker_id)
        found = http.get(f"/api/tasks/{task['id']}").json()
        assert found["task"]["status"] == "completed"
        assert [(t["status"], t["outputText"]) for t in found["turns"]] == [("completed", answer)]


def test_chunks_arrive_as_the_turn_runs(slow_server: LiveServer) -> None:
    prompt = "Take every dog in the kennel out for a long walk"
    with slow_server.http(slow_server.api_key) as http:
        worker_id = new_worker(http)
        body = {"input": prompt, "workerId": worker_id, "stream": True}
        with http.stream("POST", "/api/tasks", json=body) as response:
            timed = list(sse_lines(response))
    delta_times = [at for at, payload in timed if kind(payload) == "text-delta"]
    assert len(delta_times) >= 4
    # Each chunk came when the model produced it, not all at once at the end.
    gaps = [b - a for a, b in itertools.pairwise(delta_times)]
    assert min(gaps) > DELAY_SECONDS * 0.6, gaps
    assert timed[0][0] < delta_times[0] - DELAY_SECONDS * 0.6  # `start` came before the model spoke
    text = "".join(p["delta"] for _, p in timed if kind(p) == "text-delta")
    assert text == f"Done: {prompt}"


def test_client_disconnect_does_not_stop_the_turn(slow_server: LiveServer) -> None:
    prompt = "Brush every dog in the kennel and then count them all twice"
    with slow_server.http(slow_server.api_key) as http:
        worker_id = new_worker(http)
        errors_before = len(error_lines(slow_server))
        body = {"input": prompt, "workerId": worker_id, "stream": True}
        with http.stream("POST", "/api/tasks", json=body) as response:
            _, first = next(sse_lines(response))
            headers = response.headers
        # The response is closed here, after its first event: the client hung up mid-turn.
        task = only_task(http, worker_id)
        # The stream names its task and turn, so a client can follow up without choosing ids.
        ids = {"taskId": task["id"], "turnId": first["messageId"], "workerId": worker_id}
        assert first == {"type": "start", "messageId": ids["turnId"], "messageMetadata": ids}
        assert headers["x-kennel-task-id"] == task["id"]
        assert headers["x-kennel-turn-id"] == ids["turnId"]
        assert task["status"] in ("pending", "running")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = http.get(f"/api/tasks/{task['id']}").json()
            if found["task"]["status"] not in ("pending", "running"):
                break
            time.sleep(0.1)
        assert found["task"]["status"] == "completed", found
        (turn,) = found["turns"]
        assert turn["status"] == "completed"
        assert turn["outputText"] == f"Done: {prompt}"
        assert turn["error"] is None
        worker = http.get(f"/api/workers/{worker_id}").json()
        assert worker["output_text"] == f"Done: {prompt}"
        assert worker["running"] is False
    assert error_lines(slow_server)[errors_before:] == []
