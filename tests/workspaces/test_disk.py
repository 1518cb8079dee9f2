"""Files earlier versions kept under `<data dir>/workspaces/` move into the database at start-up."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from kennel.workspaces import CHUNK_BYTES
from kennel.workspaces.disk import import_disk_workspaces
from tests.factories import Member
from tests.factories.workers import new_worker_id
from tests.workspaces.test_store import another_process

BIG = bytes(range(256)) * (CHUNK_BYTES // 128) + b"!"  # three chunks


def put(folder: Path, relative: str, data: bytes) -> None:
    target = folder / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


async def test_a_server_starting_imports_the_files_on_disk_and_removes_them(
    app: FastAPI, client: httpx.AsyncClient, member: Member, tmp_path: Path
) -> None:
    worker_id = await new_worker_id(client, member)
    data_dir = tmp_path / "old-data"
    folder = data_dir / "workspaces" / worker_id
    put(folder, "notes.txt", b"from disk")
    put(folder, "deep/er/big.bin", BIG)
    put(folder, ".kennel-partial/0123abcd.tmp", b"half a file")  # an interrupted write's
    async with another_process(app, data_dir) as other:
        for path, content in [("notes.txt", b"from disk"), ("deep/er/big.bin", BIG)]:
            r = await other.get(f"/api/workers/{worker_id}/files/{path}", headers=member.headers)
            assert (r.status_code, r.content) == (200, content), path
    # In the database, so the first app (another data folder) serves them as well.
    state = (await client.get(f"/api/workers/{worker_id}", headers=member.headers)).json()
    assert [(f["filename"], f["size"]) for f in state["files"]] == [
        ("deep/er/big.bin", len(BIG)),
        ("notes.txt", 9),
    ]
    assert not (data_dir / "workspaces").exists()  # imported once: nothing left to import


async def test_what_cannot_be_imported_stays_and_the_database_wins(
    app: FastAPI,
    client: httpx.AsyncClient,
    member: Member,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rt = app.state.runtime
    worker_id = await new_worker_id(client, member)
    await rt.workspace(worker_id).write("newer.txt", b"written since")
    await rt.workspace(worker_id).write("taken", b"a file of that name")
    root = tmp_path / "workspaces"
    put(root / worker_id, "newer.txt", b"older copy on disk")
    put(root / worker_id, "taken/inside.txt", b"a folder where the database has a file")
    put(root / worker_id, "fine.txt", b"fine")
    put(root / "wrk_unknown", "orphan.txt", b"of no worker here")

    with caplog.at_level(logging.WARNING, logger="kennel"):
        assert await import_disk_workspaces(rt.db, tmp_path) == 1
    files = rt.workspace(worker_id)
    assert await files.read("newer.txt") == b"written since"
    assert await files.read("fine.txt") == b"fine"
    assert await files.file("taken/inside.txt") is None
    assert not (root / worker_id / "newer.txt").exists()  # the database had it: dropped
    assert not (root / worker_id / "fine.txt").exists()
    assert (root / worker_id / "taken" / "inside.txt").read_bytes().startswith(b"a folder")
    assert (root / "wrk_unknown" / "orphan.txt").exists()
    warnings = "\n".join(r.getMessage() for r in caplog.records)
    assert "taken/inside.txt" in warnings
    assert "wrk_unknown" in warnings
    # A second start finds what was left, and imports nothing more.
    assert await import_disk_workspaces(rt.db, tmp_path) == 0
    assert (root / "wrk_unknown" / "orphan.txt").exists()


async def test_no_folder_no_work(app: FastAPI, tmp_path: Path) -> None:
    assert await import_disk_workspaces(app.state.runtime.db, tmp_path) == 0
    assert list(tmp_path.iterdir()) == []
