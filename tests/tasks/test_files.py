"""Workspace files: multipart uploads, files the agent writes, downloads, limits and traversal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import Member, make_member
from tests.factories.workers import new_worker_id

ALL_BYTES = bytes(range(256))
TEXT = "Beagles: 3\nSetters: 2\nÜmlaut dogs: 1\n".encode()


async def upload(
    client: httpx.AsyncClient,
    member: Member,
    files: list[tuple[str, bytes, str]],
    **fields: str,
) -> httpx.Response:
    return await client.post(
        "/api/tasks",
        data={"input": "Look at the files", **fields},
        files=[("files", f) for f in files],
        headers=member.headers,
    )


async def worker_files(client: httpx.AsyncClient, member: Member, worker_id: str) -> list[dict]:
    r = await client.get(f"/api/workers/{worker_id}", headers=member.headers)
    assert r.status_code == 200, r.text
    return r.json()["files"]


async def turn_files(client: httpx.AsyncClient, member: Member, task_id: str) -> list[list[dict]]:
    r = await client.get(f"/api/tasks/{task_id}/turns", headers=member.headers)
    assert r.status_code == 200, r.text
    return [turn["files"] for turn in r.json()["items"]]


async def stored(app: FastAPI, worker_id: str) -> list[str]:
    """The paths of the worker's files, from the store itself."""
    return [f.path for f in await app.state.runtime.workspace(worker_id).list()]


def data_dir(app: FastAPI) -> Path:
    return Path(app.state.runtime.settings.data_dir)


class TestUpload:
    async def test_files_land_in_the_workspace(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await upload(
            client,
            member,
            [
                ("bytes.bin", ALL_BYTES, "application/octet-stream"),
                ("notes.txt", TEXT, "text/plain"),
            ],
            workerId=worker_id,
        )
        assert r.status_code == 200, r.text
        worker = r.json()
        assert worker["status"] == "completed"

        listed = {f["filename"]: f for f in worker["files"]}
        assert set(listed) == {"bytes.bin", "notes.txt"}
        assert listed["bytes.bin"]["mediaType"] == "application/octet-stream"
        assert listed["bytes.bin"]["size"] == 256
        assert listed["notes.txt"]["mediaType"] == "text/plain"
        assert listed["notes.txt"]["size"] == len(TEXT)
        assert worker["files"] == await worker_files(client, member, worker_id)

        for name, content in [("bytes.bin", ALL_BYTES), ("notes.txt", TEXT)]:
            url = listed[name]["url"]
            assert url == f"http://kennel.test/api/workers/{worker_id}/files/{name}"
            download = await client.get(url, headers=member.headers)
            assert download.status_code == 200
            assert download.content == content
            assert download.headers["content-type"].startswith(listed[name]["mediaType"])
            assert (await client.get(url)).status_code == 401  # the API key is required

        (published,) = await turn_files(client, member, worker["metadata"]["taskId"])
        assert published == sorted(worker["files"], key=lambda f: f["filename"])

    async def test_two_uploads_with_one_name_keep_the_later(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        r = await upload(
            client,
            member,
            [("dup.txt", b"first", "text/plain"), ("dup.txt", b"second", "text/plain")],
        )
        assert r.status_code == 200, r.text
        (listed,) = r.json()["files"]
        assert (listed["filename"], listed["size"]) == ("dup.txt", len(b"second"))
        download = await client.get(listed["url"], headers=member.headers)
        assert download.content == b"second"
        (published,) = await turn_files(client, member, r.json()["metadata"]["taskId"])
        assert [f["filename"] for f in published] == ["dup.txt"]

    async def test_larger_than_the_json_limit_is_accepted(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        big = bytes(range(256)) * 6144  # 1.5 MiB, over the 1 MiB JSON body limit
        r = await upload(client, member, [("big.bin", big, "application/octet-stream")])
        assert r.status_code == 200, r.text
        (listed,) = r.json()["files"]
        assert listed["size"] == len(big)
        download = await client.get(listed["url"], headers=member.headers)
        assert download.content == big

    async def test_json_body_over_the_limit_is_413(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        body = json.dumps({"input": "x" * (1024 * 1024 + 1)})
        r = await client.post(
            "/api/tasks",
            content=body,
            headers={**member.headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 413
        assert r.json()["error"]["message"]

    async def test_chunked_multipart_over_the_request_limit_is_413(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(max_upload_request_bytes=64 * 1024)
        body, content_type = _multipart_body(
            {"input": "too much"}, [("big.bin", b"x" * (200 * 1024), "application/octet-stream")]
        )

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: found while reading
            for at in range(0, len(body), 8192):
                yield body[at : at + 8192]

        r = await client.post(
            "/api/tasks",
            content=chunks(),
            headers={**member.headers, "Content-Type": content_type},
        )
        assert r.status_code == 413, r.text
        assert "larger than 65536 bytes" in r.json()["error"]["message"]

    async def test_a_malformed_multipart_body_is_400(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        r = await client.post(
            "/api/tasks",
            content=b"--B\r\nContent-Disposition: form-data\r\n\r\nno name, no end",
            headers={**member.headers, "Content-Type": "multipart/form-data; boundary=B"},
        )
        assert r.status_code == 400, r.text
        assert "Malformed" in r.json()["error"]["message"]

    async def test_file_over_max_file_bytes(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        reconfigure(max_file_bytes=10)
        worker_id = await new_worker_id(client, member)
        r = await upload(
            client,
            member,
            [
                ("small.txt", b"0123456789", "text/plain"),
                ("large.txt", b"0123456789!", "text/plain"),
            ],
            workerId=worker_id,
        )
        assert r.status_code == 413, r.text  # a limit, not a malformed body
        assert r.json()["error"]["param"] == "files"
        assert "large.txt" in r.json()["error"]["message"]
        # Checked before anything is written: not even the small file is kept, and no task ran.
        assert await stored(app, worker_id) == []
        assert await worker_files(client, member, worker_id) == []
        listed = await client.get(
            "/api/tasks", params={"workerId": worker_id}, headers=member.headers
        )
        assert listed.json()["totalCount"] == 0

    @pytest.mark.parametrize(
        "filename",
        ["../evil.txt", "../../evil.txt", "a/../../evil.txt", "/evil.txt", "..\\evil.txt"],
    )
    async def test_path_traversal_in_filename(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, filename: str
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await upload(
            client,
            member,
            [("fine.txt", b"fine", "text/plain"), (filename, b"evil", "text/plain")],
            workerId=worker_id,
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "files"
        assert await stored(app, worker_id) == []
        assert list(data_dir(app).rglob("evil.txt")) == []  # nor anywhere on disk
        assert await worker_files(client, member, worker_id) == []


class TestPublishedByTheAgent:
    async def test_written_file_is_published(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await client.post(
            "/api/tasks",
            json={
                "input": "write a file named report.md containing hello kennel",
                "workerId": worker_id,
            },
            headers=member.headers,
        )
        assert r.status_code == 200, r.text
        worker = r.json()
        assert worker["status"] == "completed"
        assert "write_file: wrote 12 bytes to report.md" in worker["output_text"]

        (listed,) = worker["files"]
        assert listed["filename"] == "report.md"
        assert listed["mediaType"] == "text/markdown"
        assert listed["size"] == len("hello kennel")
        (published,) = await turn_files(client, member, worker["metadata"]["taskId"])
        assert published == [listed]
        download = await client.get(listed["url"], headers=member.headers)
        assert download.status_code == 200
        assert download.text == "hello kennel"

    async def test_each_turn_lists_only_what_it_published(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        first = await upload(
            client, member, [("input.csv", b"a,b\n1,2\n", "text/csv")], workerId=worker_id
        )
        task_id = first.json()["metadata"]["taskId"]
        second = await client.post(
            "/api/tasks",
            json={"input": "write a file named out.txt containing done", "taskId": task_id},
            headers=member.headers,
        )
        assert second.status_code == 200, second.text
        assert {f["filename"] for f in second.json()["files"]} == {"input.csv", "out.txt"}
        first_turn, second_turn = await turn_files(client, member, task_id)
        assert [f["filename"] for f in first_turn] == ["input.csv"]
        assert [f["filename"] for f in second_turn] == ["out.txt"]

    async def test_write_over_max_file_bytes_is_refused(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(max_file_bytes=10)
        worker_id = await new_worker_id(client, member)
        r = await client.post(
            "/api/tasks",
            json={
                "input": "write a file named big.txt containing more than ten bytes here",
                "workerId": worker_id,
            },
            headers=member.headers,
        )
        worker = r.json()
        assert worker["status"] == "completed"
        assert "write_file (retried)" in worker["output_text"]
        assert worker["files"] == []
        assert await turn_files(client, member, worker["metadata"]["taskId"]) == [[]]


class TestDownload:
    async def test_unknown_and_escaping_paths_are_404(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        mine = await new_worker_id(client, member)
        sibling = await new_worker_id(client, member)
        for worker_id, name in [(mine, "mine.txt"), (sibling, "secret.txt")]:
            r = await upload(client, member, [(name, b"data", "text/plain")], workerId=worker_id)
            assert r.status_code == 200, r.text
        assert await stored(app, sibling) == ["secret.txt"]

        base = f"/api/workers/{mine}/files/"
        for path in [
            "missing.txt",
            "sub/missing.txt",
            f"..%2F{sibling}%2Fsecret.txt",
            f"%2E%2E/{sibling}/secret.txt",
            f"%2e%2e%2f%2e%2e%2f{data_dir(app).name}",
            "..%2F..%2F..%2Fetc%2Fpasswd",
            "%2Fetc%2Fpasswd",
            ".mine.txt.partial",
        ]:
            r = await client.get(base + path, headers=member.headers)
            assert r.status_code == 404, (path, r.status_code, r.text)
            # Refused by the download route itself, not by routing.
            assert r.json()["error"]["message"].startswith("No file "), r.text
        ok = await client.get(base + "mine.txt", headers=member.headers)
        assert ok.content == b"data"

    async def test_other_organization_cannot_download(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await upload(
            client, member, [("private.txt", b"ours", "text/plain")], workerId=worker_id
        )
        url = r.json()["files"][0]["url"]
        outsider = await make_member(app)
        denied = await client.get(url, headers=outsider.headers)
        assert denied.status_code == 404
        assert b"ours" not in denied.content
        colleague = await make_member(app, organization=member.organization)
        allowed = await client.get(url, headers=colleague.headers)  # public worker, same org
        assert allowed.content == b"ours"


async def test_multipart_fields_are_validated_like_json(
    client: httpx.AsyncClient, member: Member
) -> None:
    for fields, param in [
        ({"input": "x", "stream": "maybe"}, "stream"),
        ({"input": "x", "budget": "huge"}, "budget"),
        ({"stream": "false"}, "input"),
        ({"input": "x", "colour": "brown"}, "colour"),
    ]:
        r = await client.post(
            "/api/tasks",
            data=fields,
            files=[("files", ("a.txt", b"a", "text/plain"))],
            headers=member.headers,
        )
        assert r.status_code == 400, (fields, r.text)
        assert r.json()["error"]["param"] == param


def _multipart_body(
    fields: dict[str, str], files: list[tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    request = httpx.Request(
        "POST",
        "http://kennel.test/",
        data=fields,
        files=[("files", (name, data, media_type)) for name, data, media_type in files],
    )
    return request.read(), request.headers["content-type"]
