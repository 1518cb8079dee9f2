"""`notifications/tools/list_changed` to the sessions whose tools changed."""

from __future__ import annotations

from typing import Any

import mcp_types as types

from kennel.auth import Caller
from kennel.mcp.watch import ToolWatch

ALICE = Caller("usr_a", "org_a", "member", "key_a")
BOB = Caller("usr_b", "org_b", "member", "key_b")


class Session:
    def __init__(self, *, broken: bool = False) -> None:
        self.told = 0
        self.broken = broken

    async def send_tool_list_changed(self) -> None:
        if self.broken:
            raise ConnectionError("gone")
        self.told += 1


def tools(*names: str) -> list[types.Tool]:
    return [types.Tool(name=n, input_schema={"type": "object"}) for n in names]


class Catalogue:
    def __init__(self) -> None:
        self.by_caller = {ALICE: tools("list_workers", "run_a"), BOB: tools("list_workers")}
        self.asked: list[Caller] = []

    async def __call__(self, caller: Caller) -> list[types.Tool]:
        self.asked.append(caller)
        return self.by_caller[caller]


def watch(catalogue: Catalogue, **options: Any) -> ToolWatch:
    options.setdefault("forget_after", 3600)
    return ToolWatch(catalogue, poll_seconds=1, **options)


async def test_a_session_is_told_once_when_its_callers_tools_change() -> None:
    catalogue = Catalogue()
    w = watch(catalogue)
    alice, alice_too, bob = Session(), Session(), Session()
    w.listed("s1", ALICE, alice, catalogue.by_caller[ALICE])  # type: ignore[arg-type]
    w.listed("s2", ALICE, alice_too, catalogue.by_caller[ALICE])  # type: ignore[arg-type]
    w.listed("s3", BOB, bob, catalogue.by_caller[BOB])  # type: ignore[arg-type]
    await w.check()
    assert (alice.told, alice_too.told, bob.told) == (0, 0, 0)
    assert sorted(c.user_id for c in catalogue.asked) == ["usr_a", "usr_b"]  # once per caller
    catalogue.by_caller[ALICE] = tools("list_workers", "run_a", "run_b")
    await w.check()
    await w.check()
    assert (alice.told, alice_too.told, bob.told) == (1, 1, 0)


async def test_a_description_change_is_a_change() -> None:
    catalogue = Catalogue()
    w = watch(catalogue)
    session = Session()
    w.listed("s1", ALICE, session, catalogue.by_caller[ALICE])  # type: ignore[arg-type]
    catalogue.by_caller[ALICE] = [
        types.Tool(name=t.name, description="new", input_schema=t.input_schema)
        for t in catalogue.by_caller[ALICE]
    ]
    await w.check()
    assert session.told == 1


async def test_ended_broken_and_idle_sessions_are_forgotten() -> None:
    catalogue = Catalogue()
    w = watch(catalogue)
    ended, broken = Session(), Session(broken=True)
    w.listed("ended", ALICE, ended, catalogue.by_caller[ALICE])  # type: ignore[arg-type]
    w.listed("broken", ALICE, broken, catalogue.by_caller[ALICE])  # type: ignore[arg-type]
    w.touched("ended", BOB, ended=True)  # another key's DELETE is not the session's
    w.touched("ended", ALICE, ended=True)
    catalogue.by_caller[ALICE] = tools("list_workers")
    await w.check()  # the broken one fails once, and is forgotten
    catalogue.by_caller[ALICE] = tools("list_workers", "run_c")
    await w.check()
    assert ended.told == 0
    idle = watch(catalogue, forget_after=0)
    session = Session()
    idle.listed("idle", ALICE, session, tools())  # type: ignore[arg-type]
    await idle.check()
    assert session.told == 0
    assert catalogue.asked == [ALICE]  # once: then none was left to look at, idle or not


async def test_a_session_listening_on_its_stream_is_not_idle() -> None:
    catalogue = Catalogue()
    w = watch(catalogue, forget_after=0)
    session = Session()
    w.listed("s1", ALICE, session, catalogue.by_caller[ALICE])  # type: ignore[arg-type]
    with w.streaming("s1", ALICE):
        catalogue.by_caller[ALICE] = tools("list_workers")
        await w.check()
        assert session.told == 1
    await w.check()  # the stream closed, and the session is idle: forgotten
    catalogue.by_caller[ALICE] = tools("list_workers", "run_z")
    await w.check()
    assert session.told == 1
