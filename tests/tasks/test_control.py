"""Ending turns (`control`) and the listeners that hear of it (`listeners`)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from kennel.db import Read
from kennel.tasks import control, listeners
from kennel.tasks import repository as tasks_repo
from kennel.tasks.starting import StartedTurn, TurnRequest, record_turn
from kennel.workers import events
from tests.factories import Member
from tests.factories.workers import new_worker_id


async def pending_turn(app: FastAPI, client: httpx.AsyncClient, member: Member) -> StartedTurn:
    """A turn recorded and never queued: it stays pending until ended here."""
    worker_id = await new_worker_id(client, member)
    rt = app.state.runtime
    turn = TurnRequest(origin="api", caller=member.caller, input="Wait", worker_id=worker_id)
    async with rt.db.write() as w:
        return await record_turn(w, rt, turn)


async def nothing(turn_id: str) -> None:
    pass


class TestListeners:
    def test_a_name_is_registered_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def never(r: Read, turn_id: str) -> bool:
            return False

        monkeypatch.setattr(listeners, "_listeners", {})
        listeners.register_turn_listener("test", nothing, never)
        listeners.register_turn_listener("test", nothing, never)  # the same again: a no-op
        with pytest.raises(ValueError, match="registered already"):
            listeners.register_turn_listener("test", nothing, lambda r, t: never(r, t))

    async def test_only_the_listeners_a_turn_concerns_are_named(
        self, app: FastAPI, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def always(r: Read, turn_id: str) -> bool:
            return True

        async def never(r: Read, turn_id: str) -> bool:
            return False

        monkeypatch.setattr(listeners, "_listeners", {})
        listeners.register_turn_listener("yes", nothing, always)
        listeners.register_turn_listener("no", nothing, never)
        async with app.state.runtime.db.read() as r:
            assert await listeners.concerned(r, "trn_any") == ["yes"]


class TestEndTurn:
    async def test_a_turn_ends_once(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        started = await pending_turn(app, client, member)
        db = app.state.runtime.db
        async with db.write() as w:
            first = await control.abort_turn(w, started.turn.id, "Stopped.")
        async with db.write() as w:
            second = await control.abort_turn(w, started.turn.id, "Stopped again.")
        assert first == []  # no webhook, not by mail: no listener concerned
        assert second is None  # ended already
        async with db.read() as r:
            turn = await tasks_repo.turn(r, started.turn.id)
        assert turn is not None
        assert (turn.status, turn.error_code, turn.error_message) == (
            "aborted",
            "aborted",
            "Stopped.",
        )

    async def test_only_a_turn_in_one_of_the_given_states_ends(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        started = await pending_turn(app, client, member)
        db = app.state.runtime.db
        async with db.write() as w:
            # A turn's workflow records its outcome only from `running`: this one never ran.
            assert (
                await control.end_turn(w, started.turn.id, "completed", {}, only_from=("running",))
                is None
            )
        async with db.write() as w:
            await control.abort_turn(w, started.turn.id, "Over.")


class TestWorkerDeleted:
    async def test_deleting_a_worker_aborts_its_turns_in_flight(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        started = await pending_turn(app, client, member)
        r = await client.delete(f"/api/workers/{started.worker.id}", headers=member.headers)
        assert r.status_code == 200, r.text
        async with app.state.runtime.db.read() as r_:
            turn = await tasks_repo.turn(r_, started.turn.id)
        assert turn is not None
        assert (turn.status, turn.error_message) == ("aborted", "The worker was deleted.")

    def test_tasks_schedules_and_webhooks_subscribe(self) -> None:
        assert {"tasks", "schedules", "webhooks"} <= set(events._subscribers)

    def test_a_subscriber_name_is_taken_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def first(w: object, worker_id: str) -> None:
            pass

        async def second(w: object, worker_id: str) -> None:
            pass

        monkeypatch.setattr(events, "_subscribers", {})
        events.on_worker_deleted("x", first)  # type: ignore[arg-type]  # a Write is not used
        with pytest.raises(ValueError, match="registered already"):
            events.on_worker_deleted("x", second)  # type: ignore[arg-type]  # nor here
