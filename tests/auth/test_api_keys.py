"""Bearer auth on every route, tenant isolation, the bootstrap key and `kennel keys`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from fastapi import FastAPI
from starlette.routing import Mount, Route

from kennel.api.app import PUBLIC_PATHS, create_app
from kennel.auth.keys import generate_key, hash_key
from kennel.mcp import MCP_METHODS, MCP_PATH
from tests.conftest import make_settings
from tests.factories import Member, make_member


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, read from its OpenAPI document.

    The OpenAPI document is the public, complete list (no Kennel route is hidden from it).
    """
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    )


def served_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app answers, read from `app.routes`, where every route is
    (`kennel.api.http.add_routes`); a mounted app is one ("MOUNT", path)."""
    found: list[tuple[str, str]] = []
    for route in app.routes:
        if isinstance(route, Mount):
            found.append(("MOUNT", route.path))
        elif isinstance(route, Route):
            found.extend((m, route.path) for m in route.methods or () if m != "HEAD")
    return sorted(found)


def fill(path: str, ids: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in ids, f"add a foreign id for path parameter {name!r} to this test"
        return ids[name]

    return re.sub(r"\{(\w+)(?::\w+)?\}", sub, path)


class TestEveryRouteNeedsAKey:
    async def test_only_the_allow_list_is_public(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        fake_ids = {
            "workerId": "wrk_x",
            "userId": "usr_x",
            "taskId": "tsk_x",
            "scheduleId": "sch_x",
            "executionId": "whx_x",
            "mcpServerName": "docs",
            "path": "notes.txt",
        }
        routes = api_routes(app)
        assert routes, "no routes found"
        for method, path in routes:
            url = fill(path, fake_ids)
            if path in PUBLIC_PATHS:
                continue
            assert path.startswith("/api/"), f"{path} is outside /api and not in PUBLIC_PATHS"
            kwargs = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
            for headers in (
                {},
                {"Authorization": f"Bearer {generate_key()}"},
                {"Authorization": "Basic dXNlcjpwYXNz"},
                {"Authorization": "Bearer"},
            ):
                r = await client.request(method, url, headers=headers, **kwargs)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"]["type"] == "authentication_error"
        # `/mcp` is no REST operation, but takes the same keys (tests/e2e/test_mcp_server.py).
        for method in MCP_METHODS:
            for headers in ({}, {"Authorization": f"Bearer {generate_key()}"}):
                r = await client.request(method, MCP_PATH, headers=headers)
                assert r.status_code == 401, (method, headers, r.text)
                assert r.json()["error"]["type"] == "authentication_error"

    async def test_every_other_route_needs_a_dashboard_session(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        """Outside the API and the allow-list, every route is a dashboard page: without a live
        session it sends the browser to sign in, and does nothing else."""
        api = {(method, path) for method, path in api_routes(app)}
        fake_ids = {
            "worker_id": "wrk_x",
            "task_id": "tsk_x",
            "schedule_id": "sch_x",
            "execution_id": "whx_x",
            "path": "notes.txt",
        }
        checked = set()
        for method, path in served_routes(app):
            documented = re.sub(r":\w+\}", "}", path)  # OpenAPI drops `{path:path}`'s converter
            if (method, documented) in api or path in PUBLIC_PATHS or path == MCP_PATH:
                continue
            assert method != "MOUNT", f"mounted {path} is not in PUBLIC_PATHS"
            assert not path.startswith("/api/"), f"{method} {path} is missing from the API docs"
            url = fill(path, fake_ids)
            for cookies in ({}, {"kennel_session": "x" * 43}, {"kennel_session": ""}):
                client.cookies.clear()
                for name, value in cookies.items():
                    client.cookies.set(name, value, domain="kennel.test")
                r = await client.request(method, url, data={"csrf": "x"})
                assert r.status_code == 303, (method, path, cookies, r.text)
                assert r.headers["location"].startswith("/login"), (method, path)
            checked.add(path)
        client.cookies.clear()
        assert {"/", "/workers", "/workers/{worker_id}", "/tasks/{task_id}", "/logout"} <= checked
        # And the public ones are what they say: the sign-in form and our static files.
        assert (await client.get("/login")).status_code == 200
        assert (await client.get("/static/dashboard.js")).status_code == 200

    async def test_healthz_is_open(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok"}
        assert r.headers["x-request-id"]


class TestTenantIsolation:
    async def test_foreign_ids_are_404_everywhere(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        owner = await make_member(app)
        worker = await client.post("/api/workers", json={"title": "Theirs"}, headers=owner.headers)
        assert worker.status_code == 201
        task = await client.post(
            "/api/tasks",
            data={"input": "keep this", "workerId": worker.json()["id"]},
            files=[("files", ("notes.txt", b"secret", "text/plain"))],
            headers=owner.headers,
        )
        assert task.status_code == 200, task.text
        schedule = await client.post(
            f"/api/workers/{worker.json()['id']}/schedules",
            json={"input": "later", "when": {"type": "delayed", "delayInSeconds": 3600}},
            headers=owner.headers,
        )
        assert schedule.status_code == 201, schedule.text
        server = await client.post(
            "/api/mcp-servers",
            json={"name": "theirs", "url": "https://93.184.215.14/mcp"},  # a public address
            headers=owner.headers,
        )
        assert server.status_code == 201, server.text
        foreign = {
            "mcpServerName": "theirs",
            "scheduleId": schedule.json()["id"],
            "workerId": worker.json()["id"],
            "userId": owner.user_id,
            "taskId": task.json()["metadata"]["taskId"],
            "path": "notes.txt",
            "executionId": "whx_x",  # the worker is the foreign part
        }
        bodies = {
            "PATCH": {"title": "mine now"},
            "PUT": {"url": "https://example.com/hook"},
            "POST": {"input": "hi"},
        }
        by_path = {
            ("POST", "/api/workers/{workerId}/schedules"): {
                "input": "mine",
                "when": {"type": "delayed", "delayInSeconds": 60},
            },
            ("PATCH", "/api/workers/{workerId}/schedules/{scheduleId}"): {"paused": True},
            ("PUT", "/api/workers/{workerId}/email/allowed-senders"): {"senders": ["@x.example"]},
        }
        checked = 0
        for method, path in api_routes(app):
            if "{" not in path or path in PUBLIC_PATHS:
                continue
            url = fill(path, foreign)
            body = by_path.get((method, path), bodies.get(method))
            r = await client.request(method, url, headers=member.headers, json=body)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["error"]["type"] == "not_found_error"
            checked += 1
        assert checked >= 7
        # And the foreign worker is untouched.
        r = await client.get(f"/api/workers/{foreign['workerId']}", headers=owner.headers)
        assert r.status_code == 200
        r = await client.get("/api/mcp-servers", headers=owner.headers)
        assert [s["name"] for s in r.json()["mcpServers"]] == ["theirs"]


class TestErrorsOnUnknownRoutes:
    async def test_404_and_405_have_the_contract_shape(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        r = await client.get("/api/nothing-here", headers=member.headers)
        assert r.status_code == 404
        assert r.json()["error"]["type"] == "not_found_error"
        r = await client.put("/api/workers", headers=member.headers)
        assert r.status_code == 405
        assert "error" in r.json()

    async def test_405_allows_the_methods_of_every_route_of_the_path(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        r = await client.put("/api/workers/wrk_x", headers=member.headers)
        assert r.status_code == 405
        assert r.headers["allow"] == "DELETE, GET, PATCH"  # three routes serve this path


async def test_revoked_key_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    from kennel.auth.service import revoke_key

    member = await make_member(app)
    assert (await client.post("/api/workers", json={}, headers=member.headers)).status_code == 201
    assert await revoke_key(app.state.runtime.db, member.key) == "revoked"
    assert (await client.post("/api/workers", json={}, headers=member.headers)).status_code == 401


async def test_a_key_is_revoked_by_its_id_too(app: FastAPI, client: httpx.AsyncClient) -> None:
    from sqlalchemy import select

    from kennel.auth.service import revoke_key
    from kennel.models import api_keys

    member = await make_member(app)
    db = app.state.runtime.db
    async with db.read() as r:
        key_id = await r.scalar(select(api_keys.c.id).where(api_keys.c.user_id == member.user_id))
    assert key_id is not None
    assert await revoke_key(db, key_id) == "revoked"
    assert await revoke_key(db, key_id) == "already revoked"
    assert await revoke_key(db, "key_nope") == "unknown"
    assert (await client.get("/api/workers/wrk_x", headers=member.headers)).status_code == 401


async def test_a_checked_key_is_trusted_for_a_second_then_checked_again(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from sqlalchemy import select

    from kennel.auth import repository
    from kennel.auth.dependencies import KEY_TRUST_SECONDS
    from kennel.models import api_keys

    member = await make_member(app)
    rt = app.state.runtime
    now = [1000.0]
    app.state.verified_keys.clock = lambda: now[0]
    assert (await client.get("/api/workers", headers=member.headers)).status_code == 200
    async with rt.db.write() as w:  # revoked behind the server's back, with no wait
        key_id = await w.scalar(select(api_keys.c.id).where(api_keys.c.user_id == member.user_id))
        assert await repository.revoke_key(w, key_id)
    now[0] += KEY_TRUST_SECONDS - 0.01
    assert (await client.get("/api/workers", headers=member.headers)).status_code == 200
    now[0] += 0.01
    assert (await client.get("/api/workers", headers=member.headers)).status_code == 401


def test_trust_runs_from_before_the_lookup_and_is_bounded() -> None:
    from kennel.auth import Caller
    from kennel.auth.dependencies import VerifiedKeys

    now = [50.0]
    keys = VerifiedKeys(1.0, limit=2, clock=lambda: now[0])
    caller = Caller("usr_a", "org_a", "member", "key_a")
    keys.put("h1", caller, checked_at=49.5)  # the lookup began half a second ago
    assert keys.get("h1") == caller
    now[0] = 50.5
    assert keys.get("h1") is None
    keys.put("h1", caller, checked_at=now[0])
    keys.put("h2", caller, checked_at=now[0])
    keys.put("h3", caller, checked_at=now[0])  # over the limit: the old entries are dropped
    assert (keys.get("h1"), keys.get("h2"), keys.get("h3")) == (None, None, caller)


async def test_keys_are_stored_hashed(app: FastAPI, member: Member) -> None:
    from sqlalchemy import text

    async with app.state.runtime.db.read() as r:
        stored = await r.all(text("SELECT key_hash, prefix FROM api_keys"))
    assert member.key not in {h for h, _ in stored}
    assert hash_key(member.key) in {h for h, _ in stored}
    assert all(len(p) <= 12 for _, p in stored)


async def test_bootstrap_key(empty_database_url: str, tmp_path: Path) -> None:
    key = generate_key()
    app = create_app(
        make_settings(empty_database_url, tmp_path, bootstrap_api_key=key), durable=False
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.post(
                "/api/workers", json={}, headers={"Authorization": f"Bearer {key}"}
            )
            assert r.status_code == 201, r.text
            org_id = r.json()["organizationId"]
        async with app.state.runtime.db.read() as r:
            from sqlalchemy import text

            email, role = await r.first(text("SELECT email, role FROM users"))
        assert (email, role) == ("admin@example.com", "admin")
    # A second start with another bootstrap key changes nothing: a key already exists.
    other = generate_key()
    app2 = create_app(
        make_settings(empty_database_url, tmp_path, bootstrap_api_key=other), durable=False
    )
    async with app2.router.lifespan_context(app2):
        transport = httpx.ASGITransport(app=app2)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (
                await client.post(
                    "/api/workers", json={}, headers={"Authorization": f"Bearer {other}"}
                )
            ).status_code == 401
            r = await client.post(
                "/api/workers", json={}, headers={"Authorization": f"Bearer {key}"}
            )
            assert r.json()["organizationId"] == org_id


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KENNEL_")}
    env["KENNEL_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "kennel", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_keys_create_and_revoke_commands(empty_database_url: str, tmp_path: Path) -> None:
    upgraded = run_cli(empty_database_url, "db", "upgrade")  # the key commands make none
    assert upgraded.returncode == 0, upgraded.stderr
    created = run_cli(
        empty_database_url, "keys", "create", "--email", "ada@example.com", "--org", "Acme"
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("knl_")
    assert len(key) >= 40
    again = run_cli(
        empty_database_url, "keys", "create", "--email", "ada@example.com", "--org", "Acme"
    )
    second = again.stdout.strip().splitlines()[-1]
    assert second != key
    assert key not in run_cli(empty_database_url, "keys", "list").stdout

    app = create_app(make_settings(empty_database_url, tmp_path), durable=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            a = await client.post(
                "/api/workers", json={}, headers={"Authorization": f"Bearer {key}"}
            )
            b = await client.post(
                "/api/workers", json={}, headers={"Authorization": f"Bearer {second}"}
            )
            assert a.status_code == b.status_code == 201
            assert a.json()["userId"] == b.json()["userId"]  # same user, two keys
            revoked = run_cli(empty_database_url, "keys", "revoke", key)
            assert revoked.returncode == 0, revoked.stderr
            r = await client.post(
                "/api/workers", json={}, headers={"Authorization": f"Bearer {key}"}
            )
            assert r.status_code == 401
            r = await client.post(
                "/api/workers", json={}, headers={"Authorization": f"Bearer {second}"}
            )
            assert r.status_code == 201
    again = run_cli(empty_database_url, "keys", "revoke", key)
    assert (again.returncode, again.stdout.strip()) == (0, "already revoked; nothing to do")


def test_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KENNEL_")}
    bad = [
        ("KENNEL_PORT", "eighty"),
        ("KENNEL_DATABASE_URL", "mysql://x/y"),
        ("KENNEL_MODEL", "nosuchprovider:x"),
    ]
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "kennel", "serve"],
            env={**env, name: value, "KENNEL_DATA_DIR": str(tmp_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, value in bad
    ]
    for (name, _), process in zip(bad, started, strict=True):
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 2, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, (name, stderr)
        assert name in lines[0], (name, stderr)
