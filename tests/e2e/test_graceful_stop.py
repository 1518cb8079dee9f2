"""SIGTERM stops the server within `KENNEL_SHUTDOWN_SECONDS`, whatever is open: streams and
waiting POSTs end with what they have, and the turns go on on the next process."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_database
from tests.e2e.conftest import start_live_server

pytestmark = pytest.mark.e2e

MODEL_SECONDS = 60  # each offline answer chunk: far longer than a platform waits after SIGTERM
EXECUTOR_ID = "graceful-stop-executor"


def _stream(base_url: str, key: str, worker_id: str, found: list[Any]) -> None:
    body = {"input": "Say hi.", "workerId": worker_id, "stream": True}
    with (
        httpx.Client(base_url=base_url, timeout=120) as http,
        http.stream(
            "POST", "/api/tasks", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("data: "):
                data = line.removeprefix("data: ")
                found.append(data if data == "[DONE]" else json.loads(data))


def _wait(base_url: str, key: str, worker_id: str, found: list[Any]) -> None:
    with httpx.Client(base_url=base_url, timeout=120) as http:
        r = http.post(
            "/api/tasks",
            json={"input": "Say hello.", "workerId": worker_id},
            headers={"Authorization": f"Bearer {key}"},
        )
        found.append(r)


def test_sigterm_ends_streams_and_waits_then_the_turns_finish_on_the_next_process(
    tmp_path: Path,
) -> None:
    env = {
        "KENNEL_OFFLINE_MODEL_DELAY_SECONDS": str(MODEL_SECONDS),
        "KENNEL_TASK_WAIT_SECONDS": "50",
        "KENNEL_SHUTDOWN_SECONDS": "5",
        "KENNEL_EXECUTOR_ID": EXECUTOR_ID,
    }
    with fresh_database("sqlite", tmp_path) as database_url:
        with start_live_server(tmp_path / "one", database_url, extra_env=env) as server:
            with server.http(server.api_key) as http:
                worker_id = http.post("/api/workers", json={"title": "Slow"}).json()["id"]
            streams: list[list[Any]] = [[], []]
            waited: list[Any] = []
            clients = [
                threading.Thread(
                    target=_stream, args=(server.base_url, server.api_key, worker_id, found)
                )
                for found in streams
            ]
            clients.append(
                threading.Thread(
                    target=_wait, args=(server.base_url, server.api_key, worker_id, waited)
                )
            )
            for client in clients:
                client.start()
            deadline = time.monotonic() + 30
            while not all(found for found in streams) and time.monotonic() < deadline:
                time.sleep(0.05)  # each stream has its `start` chunk: its turn is running
            time.sleep(0.5)  # and the waiting POST is waiting
            stopped_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=60)
            took = time.monotonic() - stopped_at
            for client in clients:
                client.join(timeout=30)
            log = server.log_path.read_text()
        # Well within KENNEL_SHUTDOWN_SECONDS, not after the model's 60 s answers.
        assert took < 5 + 5, (took, log[-2000:])
        for found in streams:
            errors = [e for e in found if isinstance(e, dict) and e["type"] == "error"]
            assert [e["errorText"].split(":")[0] for e in errors] == ["server_stopping"], found
            assert found[-1] == "[DONE]"
        (answer,) = waited
        assert answer.status_code == 200, answer.text
        assert answer.json()["running"] is True  # answered with what it had
        task_ids = [found[0]["messageMetadata"]["taskId"] for found in streams]
        task_ids.append(answer.json()["metadata"]["taskId"])

        # The next process (same executor id, as a restarted container) finishes the turns.
        env["KENNEL_OFFLINE_MODEL_DELAY_SECONDS"] = "0"
        with start_live_server(tmp_path / "two", database_url, extra_env=env) as again:
            with again.http(server.api_key) as http:
                deadline = time.monotonic() + 60
                statuses: list[str] = []
                while time.monotonic() < deadline:
                    statuses = [
                        http.get(f"/api/tasks/{t}").json()["task"]["status"] for t in task_ids
                    ]
                    if all(s == "completed" for s in statuses):
                        break
                    time.sleep(0.2)
        assert statuses == ["completed"] * 3
