"""Several `kennel serve` processes on one PostgreSQL database share the turn queue and streams."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import POSTGRES_ENV, fresh_postgres_database
from tests.e2e.conftest import start_live_server


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"{POSTGRES_ENV} is not set: the multi-process test needs PostgreSQL")
    tmp_path = tmp_path_factory.mktemp("two")
    trace = tmp_path / "trace.jsonl"
    # Each process has a data folder of its own: workspace files are in the database.
    common = {
        "KENNEL_OFFLINE_MODEL_TRACE_FILE": str(trace),
        "KENNEL_OFFLINE_MODEL_DELAY_SECONDS": "0.2",
        "KENNEL_TURN_CONCURRENCY": "1",  # so that neither process can take the whole queue
        "KENNEL_TASK_WAIT_SECONDS": "0",
    }
    with fresh_postgres_database() as url:
        with start_live_server(
            tmp_path / "a", url, extra_env={**common, "KENNEL_EXECUTOR_ID": "a"}
        ) as a:
            with start_live_server(
                tmp_path / "b", url, extra_env={**common, "KENNEL_EXECUTOR_ID": "b"}
            ) as b:
                yield a, b, trace


def test_processes_share_the_queue_and_each_turn_runs_once(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b, trace = two_servers
    headers = {"Authorization": f"Bearer {a.api_key}"}  # A's bootstrap key: one database
    with httpx.Client(base_url=a.base_url, headers=headers, timeout=30) as client:
        worker = client.post("/api/workers", json={"title": "Shared"}).json()
        inputs = [f"job number {i}" for i in range(8)]

        def start(text: str) -> str:
            r = client.post("/api/tasks", json={"input": text, "workerId": worker["id"]})
            assert r.status_code == 200, r.text
            return r.json()["metadata"]["taskId"]

        with ThreadPoolExecutor(4) as pool:
            task_ids = list(pool.map(start, inputs))
        for _ in range(300):
            listed = client.get("/api/tasks", params={"workerId": worker["id"]}).json()
            if (
                all(t["status"] == "completed" for t in listed["tasks"])
                and listed["totalCount"] == 8
            ):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"turns did not complete: {listed}")
        for task_id in task_ids:
            turns = client.get(f"/api/tasks/{task_id}/turns").json()["items"]
            assert len(turns) == 1
            assert turns[0]["status"] == "completed"
    requests = [json.loads(line) for line in trace.read_text().splitlines()]
    requests = [r for r in requests if r["prompt"] in inputs]
    # Each turn asked the model exactly once, and both processes did some of the work.
    assert sorted(r["prompt"] for r in requests) == sorted(inputs)
    assert {r["pid"] for r in requests} == {a.process.pid, b.process.pid}


def test_a_live_turn_streams_to_another_process(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = two_servers
    headers = {"Authorization": f"Bearer {a.api_key}"}
    with (
        httpx.Client(base_url=a.base_url, headers=headers, timeout=30) as on_a,
        httpx.Client(base_url=b.base_url, headers=headers, timeout=30) as on_b,
    ):
        worker = on_a.post("/api/workers", json={}).json()
        long_input = "please stream " + " ".join(f"word{i}" for i in range(30))
        started = on_a.post("/api/tasks", json={"input": long_input, "workerId": worker["id"]})
        assert started.json()["running"] is True
        events = []
        with on_b.stream("GET", f"/api/workers/{worker['id']}", params={"stream": "true"}) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    events.append(json.loads(line[6:]))
        deltas = [e["delta"] for e in events if e["type"] == "text-delta"]
        assert len(deltas) > 3  # followed live, chunk by chunk, not one stored message
        assert "word20" in "".join(deltas)
        assert events[-1]["type"] == "finish"
        state = on_b.get(f"/api/workers/{worker['id']}").json()
        assert state["status"] == "completed"


def test_files_are_the_same_through_either_process(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b, trace = two_servers
    headers = {"Authorization": f"Bearer {a.api_key}"}
    with (
        httpx.Client(base_url=a.base_url, headers=headers, timeout=30) as on_a,
        httpx.Client(base_url=b.base_url, headers=headers, timeout=30) as on_b,
    ):
        worker = on_a.post("/api/workers", json={"title": "Files"}).json()
        uploaded = on_a.post(
            "/api/tasks",
            data={"input": "keep this", "workerId": worker["id"]},
            files=[
                ("files", ("in/data.bin", bytes(range(256)) * 4096, "application/octet-stream"))
            ],
        )
        assert uploaded.status_code == 200, uploaded.text
        note = on_a.post(
            "/api/tasks",
            data={"input": "keep the note", "workerId": worker["id"]},
            files=[("files", ("note.txt", b"Saved through process a", "text/plain"))],
        )
        assert note.status_code == 200, note.text
        # Turns that read the upload through process a: both processes run some of them.
        readers = [f"read the file note.txt for reader {i}" for i in range(6)]
        reader_tasks = []
        for text in readers:
            r = on_b.post("/api/tasks", json={"input": text, "workerId": worker["id"]})
            assert r.status_code == 200, r.text
            reader_tasks.append(r.json()["metadata"]["taskId"])
        # Turns that write files, run by whichever process dequeues each.
        inputs = [f"write a file named out{i}.txt containing value {i}" for i in range(6)]
        for text in inputs:
            r = on_a.post("/api/tasks", json={"input": text, "workerId": worker["id"]})
            assert r.status_code == 200, r.text
        for _ in range(300):
            listed = on_b.get("/api/tasks", params={"workerId": worker["id"]}).json()
            if listed["totalCount"] == 14 and all(
                t["status"] == "completed" for t in listed["tasks"]
            ):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"turns did not complete: {listed}")
        for client in (on_a, on_b):
            base = f"/api/workers/{worker['id']}/files/"
            assert client.get(base + "in/data.bin").content == bytes(range(256)) * 4096
            for i in range(6):
                assert client.get(base + f"out{i}.txt").text == f"value {i}"
        answers = [
            on_a.get(f"/api/tasks/{task_id}").json()["turns"][0]["outputText"]
            for task_id in reader_tasks
        ]
    assert len(answers) == 6
    assert all("read_file: Saved through process a" in text for text in answers), answers
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    writers = {r["pid"] for r in lines if r["prompt"] in inputs}
    assert writers == {a.process.pid, b.process.pid}  # both processes wrote some of them
    # The upload through process a was read by turns on process b too.
    assert {r["pid"] for r in lines if r["prompt"] in readers} == {a.process.pid, b.process.pid}
