"""Workspace files in the database: shared by every process, written whole, read in chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from kennel.api.app import create_app
from kennel.workspaces import CHUNK_BYTES, FileReplaced, Workspace, WorkspaceError, store
from kennel.workspaces import repository as repo
from tests.conftest import make_settings
from tests.factories import Member
from tests.factories.workers import new_worker_id

# Three chunks, the last one short, and every byte value.
BIG = bytes(range(256)) * (2 * CHUNK_BYTES // 256) + b"tail" * 300


def workspace(app: FastAPI, worker_id: str) -> Workspace:
    return app.state.runtime.workspace(worker_id)


@asynccontextmanager
async def another_process(app: FastAPI, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database with a data folder of its own, as another `kennel
    serve` would be (without DBOS, which runs once per process)."""
    other = create_app(
        make_settings(app.state.runtime.settings.database_url, data_dir), durable=False
    )
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://kennel.test") as c:
            c.app = other  # type: ignore[attr-defined]  # for the test to reach its runtime
            yield c


class TestSharedByProcesses:
    async def test_an_upload_through_one_app_downloads_through_another(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, tmp_path: Path
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await client.post(
            "/api/tasks",
            data={"input": "Keep it", "workerId": worker_id},
            files=[("files", ("shared/big.bin", BIG, "application/octet-stream"))],
            headers=member.headers,
        )
        assert r.status_code == 200, r.text
        async with another_process(app, tmp_path / "other-data") as other:
            download = await other.get(
                f"/api/workers/{worker_id}/files/shared/big.bin", headers=member.headers
            )
            assert download.status_code == 200, download.text
            assert download.content == BIG
            listed = (await other.get(f"/api/workers/{worker_id}", headers=member.headers)).json()
            assert [(f["filename"], f["size"]) for f in listed["files"]] == [
                ("shared/big.bin", len(BIG))
            ]
            # And the other way: written by the other process's runtime, read through this one.
            other_runtime = other.app.state.runtime  # type: ignore[attr-defined]
            await other_runtime.workspace(worker_id).write("from-b.txt", b"hello from b")
        back = await client.get(
            f"/api/workers/{worker_id}/files/from-b.txt", headers=member.headers
        )
        assert back.content == b"hello from b"
        assert not (tmp_path / "other-data" / "workspaces").exists()  # nothing went to disk


class TestDownload:
    async def test_a_file_of_several_chunks_streams_whole(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        worker_id = await new_worker_id(client, member)
        await workspace(app, worker_id).write("big.bin", BIG)
        found = await workspace(app, worker_id).file("big.bin")
        assert found is not None
        assert found.chunk_count == 3

        reads: list[int] = []
        read_chunk = repo.chunk

        async def counted(r, file_id, seq):  # type: ignore[no-untyped-def]
            reads.append(seq)
            return await read_chunk(r, file_id, seq)

        monkeypatch.setattr(repo, "chunk", counted)
        url = f"/api/workers/{worker_id}/files/big.bin"
        async with client.stream("GET", url, headers=member.headers) as download:
            assert download.status_code == 200
            assert download.headers["content-length"] == str(len(BIG))
            assert download.headers["content-type"] == "application/octet-stream"
            assert download.headers["content-disposition"] == 'attachment; filename="big.bin"'
            body = b"".join([part async for part in download.aiter_bytes()])
        assert body == BIG
        assert reads == [0, 1, 2]  # a chunk per statement, never the file at once

    async def test_an_empty_file_and_a_name_to_quote(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        await workspace(app, worker_id).write("empty.txt", b"")
        await workspace(app, worker_id).write("notes/été.md", "# é".encode())
        empty = await client.get(
            f"/api/workers/{worker_id}/files/empty.txt", headers=member.headers
        )
        assert (empty.status_code, empty.content) == (200, b"")
        assert await workspace(app, worker_id).read("empty.txt") == b""
        accented = await client.get(
            f"/api/workers/{worker_id}/files/notes/%C3%A9t%C3%A9.md", headers=member.headers
        )
        assert accented.content == "# é".encode()
        assert accented.headers["content-disposition"] == (
            "attachment; filename*=utf-8''%C3%A9t%C3%A9.md"
        )


class TestReplace:
    async def test_a_replace_is_whole_and_cuts_a_download_of_the_old_version_short(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        files = workspace(app, worker_id)
        await files.write("doc.bin", BIG)
        old = await files.file("doc.bin")
        assert old is not None
        reading = files.chunks(old)
        assert await anext(reading) == BIG[:CHUNK_BYTES]

        new = b"n" * (CHUNK_BYTES + 1)
        await files.write("doc.bin", new)
        with pytest.raises(FileReplaced):  # never the old version's start with the new's end
            await anext(reading)
        assert await files.read("doc.bin") == new
        current = await files.file("doc.bin")
        assert current is not None
        assert (current.size, current.chunk_count) == (len(new), 2)
        assert current.id != old.id
        async with app.state.runtime.db.read() as r:
            assert await repo.chunks(r, old.id) == []  # the old chunks went with the old row
            row = await repo.of_path(r, worker_id, "doc.bin")
        assert row is not None
        assert row.created_at <= row.updated_at

    async def test_a_write_that_fails_leaves_the_old_file(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        files = workspace(app, worker_id)
        await files.write("keep.txt", b"old")

        async def write_then_fail() -> None:
            async with app.state.runtime.db.write():
                await files.write("keep.txt", BIG)  # joins the block, which then fails
                raise RuntimeError("after the write")

        with pytest.raises(RuntimeError, match="after the write"):
            await write_then_fail()
        assert await files.read("keep.txt") == b"old"
        assert [(f.path, f.size) for f in await files.list()] == [("keep.txt", 3)]


class TestNames:
    async def test_a_file_and_a_folder_never_share_a_name(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        files = workspace(app, await new_worker_id(client, member))
        await files.write("a/b/c.txt", b"x")
        with pytest.raises(WorkspaceError) as folder:
            await files.write("a/b", b"y")
        assert str(folder.value) == "'a/b' is a folder; a file cannot take its name"
        with pytest.raises(WorkspaceError) as inside:
            await files.write("a/b/c.txt/d.txt", b"y")
        assert (
            str(inside.value) == "'a/b/c.txt' is a file, so 'a/b/c.txt/d.txt' cannot be made in it"
        )
        # Compared exactly: other case, a LIKE wildcard, a longer name are other names.
        for name in ["A/b", "a/B", "a_b", "a%", "a/bb", "a/b.txt"]:
            await files.write(name, b"z")
        with pytest.raises(WorkspaceError, match="is a folder"):
            await files.write("a", b"z")

    async def test_refused_names_write_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        files = workspace(app, await new_worker_id(client, member))
        for name in ["../up.txt", "/abs.txt", ".hidden", "a\u202etxt.exe"]:
            with pytest.raises(WorkspaceError):
                await files.write(name, b"x")
        with pytest.raises(WorkspaceError, match="larger than"):
            await Workspace(files.db, files.worker_id, max_file_bytes=3).write("big.txt", b"four")
        assert await files.list() == []
        assert await files.file("../up.txt") is None
        with pytest.raises(FileNotFoundError):
            await files.read("missing.txt")


class TestList:
    async def test_in_code_point_order_and_capped(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        files = workspace(app, await new_worker_id(client, member))
        names = ["b.txt", "B.txt", "a/z.md", "a-b.txt", "é.txt", "a.txt"]
        for name in names:
            await files.write(name, name.encode())
        listed = await files.list()
        assert [f.path for f in listed] == sorted(names)
        by_path = {f.path: f for f in listed}
        assert (by_path["a/z.md"].size, by_path["a/z.md"].media_type) == (6, "text/markdown")
        monkeypatch.setattr(store, "MAX_LISTED", 2)
        assert len(await files.list()) == 2


async def test_the_migration_makes_the_declared_tables(app: FastAPI) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from kennel.models import metadata

    settings = app.state.runtime.settings
    url = settings.database_url_object
    engine = create_engine(
        url.set(drivername="sqlite" if settings.is_sqlite else "postgresql+psycopg")
    )
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert [d for d in differences if "workspace_file" in repr(d)] == []
