"""The official SDK with its defaults (60 s timeout, 2 retries) against a slow model: one call
makes one task and one worker. Before, a 70 s turn answered after the SDK had given up and sent
the request again (5 calls made 15 tasks), and a prompt-only worker waited 120 s for its
instructions (one call made 3 workers and failed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from handinger import Handinger

from tests.conftest import fresh_database
from tests.e2e.conftest import LiveServer, start_live_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir: Path = tmp_path_factory.mktemp("slow-model")
    env = {"KENNEL_OFFLINE_MODEL_DELAY_SECONDS": "70"}  # every model request takes 70 s
    with (
        fresh_database("sqlite", workdir) as database_url,
        start_live_server(workdir, database_url, backend="sqlite", extra_env=env) as server,
    ):
        yield server


def test_one_call_one_task_and_one_worker(slow_server: LiveServer) -> None:
    sdk = Handinger(base_url=slow_server.base_url, api_key=slow_server.api_key)  # defaults
    results: dict[str, object] = {}

    def make_worker() -> None:
        results["worker"] = sdk.workers.create(prompt="Watch the kennel's water bowls.")

    maker = threading.Thread(target=make_worker)
    started = time.monotonic()
    maker.start()
    with slow_server.http(slow_server.api_key) as http:
        plain = http.post("/api/workers", json={"title": "Patient"}).json()
    task = sdk.tasks.create(input="Take your time.", worker_id=plain["id"])
    maker.join(90)
    took = time.monotonic() - started
    assert took < 60  # both answered before the SDK's timeout: nothing was sent twice
    assert task.running is True  # the 70 s turn goes on; the answer says where to look
    worker = results["worker"]
    assert worker.instructions == "Watch the kennel's water bowls."  # type: ignore[attr-defined]
    with slow_server.http(slow_server.api_key) as http:
        listed = http.get("/api/tasks").json()
        workers = http.get("/api/workers").json()
    assert listed["totalCount"] == 1
    assert workers["totalCount"] == 2  # the plain one and the prompt's: one each
    sdk.close()
