"""Queue runners sleep while idle and wake when this process has work for them (issue 27).

The server polls its queues every 30 s here, so a turn that waited for a poll would take
about that long: each test's turns must end well before, which only a wake-up can make
happen. Without `core.wakeup`'s hooks in DBOS (a DBOS release that renamed what it wraps),
these fail."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from kennel.core.wakeup import _Bell
from tests.conftest import BACKENDS, fresh_database
from tests.e2e.conftest import start_live_server

pytestmark = pytest.mark.e2e

SLOW_POLL = {"KENNEL_QUEUE_POLLING_SECONDS": "30"}
# Far under the 30 s poll, far over a turn of the offline model on a busy machine.
WITHIN_SECONDS = 12.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_turn_queued_here_starts_without_waiting_for_a_poll(backend: str, tmp_path: Path) -> None:
    env = {**SLOW_POLL, "KENNEL_TURN_CONCURRENCY": "1", "KENNEL_TASK_WAIT_SECONDS": "0"}
    with (
        fresh_database(backend, tmp_path) as url,
        start_live_server(tmp_path, url, extra_env=env) as server,
        server.http(server.api_key) as http,
    ):
        worker = http.post("/api/workers", json={"title": "Wakes"}).json()["id"]
        # Right after start-up, perhaps before DBOS started the queue's runner (no bell yet).
        began = time.monotonic()
        r = http.post("/api/tasks", json={"workerId": worker, "taskId": "first", "input": "Hi"})
        assert r.status_code == 200, r.text
        server.wait_for(
            "the first turn to complete",
            lambda: http.get("/api/tasks/first").json()["task"]["status"] == "completed",
            timeout=25,
        )
        took = time.monotonic() - began
        assert took < WITHIN_SECONDS, f"the first turn took {took:.1f} s: a poll, not a wake-up"
        time.sleep(2)  # the runner is asleep in its 30 s wait
        began = time.monotonic()
        # One slot: the second and third turns start only when a slot frees, which wakes
        # the runner too.
        ids = [f"wake-{n}" for n in range(3)]
        for task_id in ids:
            r = http.post(
                "/api/tasks", json={"workerId": worker, "taskId": task_id, "input": "Say hi"}
            )
            assert r.status_code == 200, r.text

        def all_completed() -> bool:
            return all(
                http.get(f"/api/tasks/{task_id}").json()["task"]["status"] == "completed"
                for task_id in ids
            )

        server.wait_for("the three turns to complete", all_completed, timeout=25)
        took = time.monotonic() - began
        assert took < WITHIN_SECONDS, f"three turns took {took:.1f} s: a poll, not a wake-up"


def test_a_bell_wakes_its_waiter_and_stops_with_dbos() -> None:
    stop = threading.Event()
    bell = _Bell(stop)
    rung = threading.Timer(0.05, bell.ring)
    rung.start()
    began = time.monotonic()
    assert bell.wait(30) is False  # woken, not stopped
    assert time.monotonic() - began < 10
    stop.set()
    bell.set()  # what DBOS's shutdown does to each event it holds
    assert bell.wait(30) is True
    assert bell.is_set()


def test_a_bell_holds_the_poll_while_the_loop_is_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    from kennel.core import wakeup

    monkeypatch.setattr(wakeup, "_lag", 1.0)  # the server's loop a second behind
    idle = _Bell(threading.Event())  # ... but none of the queue's work runs here: not held
    idle.ring()
    began = time.monotonic()
    assert idle.wait(30) is False
    assert time.monotonic() - began < 0.25

    bell = _Bell(threading.Event(), running=lambda: 3)
    threading.Timer(0.3, lambda: monkeypatch.setattr(wakeup, "_lag", 0.0)).start()
    bell.ring()
    began = time.monotonic()
    assert bell.wait(30) is False
    assert time.monotonic() - began >= 0.25  # held until the loop caught up, not at the ring

    monkeypatch.setattr(wakeup, "_lag", 1.0)  # behind for good: held at most _HOLD_SECONDS
    monkeypatch.setattr(wakeup, "_HOLD_SECONDS", 0.3)
    bell.ring()
    began = time.monotonic()
    assert bell.wait(30) is False
    assert 0.25 <= time.monotonic() - began < 10


def test_a_bell_holds_the_poll_while_mail_comes_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from kennel.core import wakeup

    bell = _Bell(threading.Event())  # nothing of the queue's runs here: only mail holds it
    wakeup.defer(0.3)
    bell.ring()
    began = time.monotonic()
    assert bell.wait(30) is False
    assert time.monotonic() - began >= 0.25  # held until the mail stopped, not at the ring

    monkeypatch.setattr(wakeup, "_HOLD_SECONDS", 0.3)  # mail that never stops: 0.3 s at most
    wakeup.defer(60)
    bell.ring()
    began = time.monotonic()
    assert bell.wait(30) is False
    assert 0.25 <= time.monotonic() - began < 10
    monkeypatch.setattr(wakeup, "_deferred", 0.0)


def test_every_slot_freed_wakes_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four slots, four running; one ends (a poll dequeues the next, not yet counted as
    running by DBOS), then another: that second release, with the runner no longer full,
    must wake it too, or the free slot waits for the next poll (5 s for mail)."""
    import dbos._core as core

    from kennel.core import wakeup

    wakeup.install({})  # DBOS's slot release wrapped (a no-op once the app did it)
    monkeypatch.setitem(wakeup._concurrency, "bench_queue", 4)
    bell = _Bell(threading.Event())
    bell.wait(0)  # the ring it starts with
    monkeypatch.setitem(wakeup._bells, "bench_queue", bell)
    active = core.ActiveWorkflowById()
    entries = [active.add(f"wf-{n}", "bench_queue") for n in range(4)]
    entries[0].release()
    assert bell._rung.is_set()  # full, then a slot free
    bell.wait(0)  # the poll that dequeues the next (DBOS counts it only once it runs)
    entries[1].release()
    assert bell._rung.is_set(), "a slot freed while not full did not wake the runner"


def test_a_runners_bell_waits_on_dbos_stop_event_not_on_its_managers_bell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DBOS's manager hands its stop event (a bell that looks every 10 s) to the runners it
    starts: a runner's hold must last its own 50 ms steps, and leave the manager's ring."""
    from kennel.core import wakeup

    stop = threading.Event()
    manager = _Bell(stop, at_least=10.0)
    manager.wait(0)  # the ring it starts with
    runner = _Bell(manager)
    manager.ring()  # queues registered: for the manager, not for the runner
    threading.Timer(0.2, lambda: monkeypatch.setattr(wakeup, "_deferred", 0.0)).start()
    wakeup.defer(60)  # mail coming in holds the runner, until the timer above
    runner.ring()
    began = time.monotonic()
    assert runner.wait(30) is False
    assert time.monotonic() - began < 5, "the hold waited on the manager's 10 s"
    assert manager._rung.is_set(), "the runner took the manager's ring"
    stop.set()  # DBOS's shutdown: it sets the stop event, and each bell it holds
    runner.set()
    began = time.monotonic()
    assert runner.wait(30) is True  # stopped: DBOS's event beneath the manager's bell
    assert time.monotonic() - began < 5
