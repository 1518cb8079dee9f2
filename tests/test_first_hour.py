"""What a new user meets first: the API reference offline, `url`s that follow the server, the
list of workers, and settings that are wrong said in one line (issue 10)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from kennel.core.settings import Settings
from tests.factories import Member, make_member
from tests.factories.workers import new_worker


async def test_the_api_reference_needs_no_other_host(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert re.findall(r"https?://", page.text) == []  # everything it loads comes from here
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for asset in assets:
        loaded = await client.get(asset)
        assert loaded.status_code == 200, asset
        assert len(loaded.content) > 1000


@pytest.mark.parametrize(
    ("host", "port", "public_url", "expected"),
    [
        ("127.0.0.1", 8020, None, "http://127.0.0.1:8020"),
        ("0.0.0.0", 9000, None, "http://localhost:9000"),
        ("::1", 9000, None, "http://[::1]:9000"),
        ("0.0.0.0", 9000, "https://kennel.example.com/", "https://kennel.example.com"),
    ],
)
def test_urls_follow_the_address_served_unless_set(
    tmp_path: Path, host: str, port: int, public_url: str | None, expected: str
) -> None:
    settings = Settings(data_dir=tmp_path, host=host, port=port, public_url=public_url)
    assert settings.base_url == expected


class TestListWorkers:
    async def test_pages_newest_first_with_counts(self, client: httpx.AsyncClient, app) -> None:
        member = await make_member(app)
        made = [(await new_worker(client, member, title=f"W{i}"))["id"] for i in range(23)]
        first = (await client.get("/api/workers", headers=member.headers)).json()
        assert (first["page"], first["pageCount"], first["totalCount"]) == (1, 2, 23)
        assert [w["id"] for w in first["workers"]] == made[::-1][:20]
        second = (await client.get("/api/workers?page=2", headers=member.headers)).json()
        assert [w["id"] for w in second["workers"]] == made[::-1][20:]
        beyond = (await client.get("/api/workers?page=3", headers=member.headers)).json()
        assert beyond["workers"] == []
        for bad in ("0", "x"):
            r = await client.get(f"/api/workers?page={bad}", headers=member.headers)
            assert r.status_code == 400
            assert r.json()["error"]["param"] == "page"

    async def test_visibility_rules_and_other_organizations(
        self, client: httpx.AsyncClient, app, member: Member
    ) -> None:
        colleague = await make_member(app, organization=member.organization)
        stranger = await make_member(app)
        public = (await new_worker(client, member, title="Shared"))["id"]
        private = (await new_worker(client, member, title="Mine", visibility="private"))["id"]
        await new_worker(client, stranger, title="Theirs")

        async def seen(who: Member, query: str = "") -> list[str]:
            r = await client.get(f"/api/workers{query}", headers=who.headers)
            assert r.status_code == 200, r.text
            return [w["id"] for w in r.json()["workers"]]

        assert set(await seen(member)) >= {public, private}
        assert public in await seen(colleague)
        assert private not in await seen(colleague)
        assert not {public, private} & set(await seen(stranger))
        assert await seen(member, "?visibility=private") == [private]
        r = await client.put(
            f"/api/workers/{private}/members/{colleague.user_id}", headers=member.headers
        )
        assert r.status_code == 200, r.text
        assert private in await seen(colleague)
