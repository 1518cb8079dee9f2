"""Signing in to the dashboard with an API key, coming back to the page asked for, signing out."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from kennel.auth.service import revoke_key
from kennel.auth.sessions import LOGIN_TOKEN_SECONDS, login_token, server_secret
from kennel.dashboard.auth import safe_next
from tests.factories import Member, make_member
from tests.factories.dashboard import csrf_of, sign_in, signed_in_browser


def _cookie_header(response: httpx.Response, name: str) -> str:
    found = [c for c in response.headers.get_list("set-cookie") if c.startswith(name + "=")]
    assert found, response.headers.get_list("set-cookie")
    return found[0]


class TestLoginForm:
    async def test_one_field_labelled_api_key(self, client: httpx.AsyncClient) -> None:
        page = await client.get("/login")
        assert page.status_code == 200
        assert '<label for="api_key">API key</label>' in page.text
        assert 'id="api_key" name="api_key" type="password"' in page.text
        assert page.text.count("<input") == 3  # the key, and the hidden csrf and next

    async def test_a_signed_out_page_sends_the_browser_to_sign_in(
        self, client: httpx.AsyncClient
    ) -> None:
        r = await client.get("/workers/wrk_x?page=2")
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=%2Fworkers%2Fwrk_x%3Fpage%3D2"
        r = await client.get("/")
        assert (r.status_code, r.headers["location"]) == (303, "/login")


class TestSignIn:
    async def test_a_valid_key_signs_in_and_goes_back(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        r = await sign_in(client, member.key, "/workers?page=1")
        assert r.status_code == 303
        assert r.headers["location"] == "/workers?page=1"
        cookie = _cookie_header(r, "kennel_session")
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Path=/" in cookie
        assert "Secure" not in cookie  # http://kennel.test
        assert member.key not in " ".join(r.headers.get_list("set-cookie"))
        page = await client.get("/workers")
        assert page.status_code == 200
        assert "Sign out" in page.text

    async def test_https_makes_the_cookie_secure(
        self, app: FastAPI, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(public_url="https://kennel.example.com")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://kennel.example.com"
        ) as browser:
            form = await browser.get("/login")
            r = await sign_in(browser, member.key)
            assert r.status_code == 303
            assert (await browser.get("/workers")).status_code == 200
        issued = _cookie_header(form, "__Host-kennel_login")  # no Domain, path /, Secure
        assert "Secure" in issued
        assert "Path=/;" in issued + ";"
        assert "Domain" not in issued
        assert "Secure" in _cookie_header(r, "__Host-kennel_login")  # deleted, as it was set
        cookie = _cookie_header(r, "__Host-kennel_session")
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie

    @pytest.mark.parametrize(
        "target",
        [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "javascript:alert(1)",
            "/workers\r\nLocation: https://evil.example",
            "workers",
            "/login?next=/login",
        ],
    )
    async def test_next_never_leaves_the_site(
        self, client: httpx.AsyncClient, member: Member, target: str
    ) -> None:
        r = await sign_in(client, member.key, target)
        assert r.status_code == 303
        assert r.headers["location"] == "/"

    def test_safe_next_keeps_our_paths(self) -> None:
        assert safe_next("/tasks/tsk_1?x=1#top") == "/tasks/tsk_1?x=1#top"
        assert safe_next(None) == "/"
        assert safe_next("/" + "a" * 3000) == "/"

    async def test_a_wrong_key_is_refused(self, client: httpx.AsyncClient) -> None:
        r = await sign_in(client, "knl_" + "x" * 43)
        assert r.status_code == 401
        assert "That API key is not valid." in r.text
        assert not [c for c in r.headers.get_list("set-cookie") if "kennel_session" in c]
        assert (await client.get("/workers")).status_code == 303

    async def test_the_form_needs_its_own_token(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        # Without the token (a form posted from another site): no one is signed in, not even
        # as the attacker's user.
        r = await client.post("/login", data={"api_key": member.key, "next": "/"})
        assert r.status_code == 403
        assert not [c for c in r.headers.get_list("set-cookie") if "kennel_session" in c]
        form = await client.get("/login")
        r = await client.post(
            "/login", data={"api_key": member.key, "csrf": csrf_of(form.text) + "x"}
        )
        assert r.status_code == 403

    async def test_signed_in_browsers_skip_the_form(self, app: FastAPI, member: Member) -> None:
        async with signed_in_browser(app, member) as browser:
            r = await browser.get("/login", params={"next": "/workers"})
            assert (r.status_code, r.headers["location"]) == (303, "/workers")


class TestSignOut:
    async def test_sign_out_ends_the_session_everywhere(self, app: FastAPI, member: Member) -> None:
        async with signed_in_browser(app, member) as browser:
            page = await browser.get("/workers")
            session = browser.cookies["kennel_session"]
            r = await browser.post("/logout", data={"csrf": csrf_of(page.text)})
            assert (r.status_code, r.headers["location"]) == (303, "/login")
            assert 'kennel_session=""' in _cookie_header(r, "kennel_session")
            assert (await browser.get("/workers")).status_code == 303
            # The old cookie, replayed, is dead on the server too.
            browser.cookies.set("kennel_session", session, domain="kennel.test")
            r = await browser.get("/workers")
            assert (r.status_code, r.headers["location"]) == (303, "/login?next=%2Fworkers")

    async def test_sign_out_needs_the_token(self, app: FastAPI, member: Member) -> None:
        async with signed_in_browser(app, member) as browser:
            assert (await browser.post("/logout", data={})).status_code == 403
            assert (await browser.get("/workers")).status_code == 200

    async def test_revoking_the_key_signs_the_browser_out(self, app: FastAPI) -> None:
        member = await make_member(app)
        async with signed_in_browser(app, member) as browser:
            assert (await browser.get("/workers")).status_code == 200
            await revoke_key(app.state.runtime.db, member.key)
            r = await browser.get("/workers")
            assert (r.status_code, r.headers["location"]) == (303, "/login?next=%2Fworkers")

    async def test_an_idle_session_asks_to_sign_in_again(
        self, app: FastAPI, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        from datetime import timedelta

        from sqlalchemy import update

        from kennel.core.timestamps import utcnow
        from kennel.models import dashboard_sessions

        reconfigure(session_idle_seconds=600)
        async with signed_in_browser(app, member) as browser:
            async with app.state.runtime.db.write() as w:
                await w.execute(
                    update(dashboard_sessions)
                    .where(dashboard_sessions.c.user_id == member.user_id)
                    .values(last_seen_at=utcnow() - timedelta(seconds=601))
                )
            assert (await browser.get("/workers")).status_code == 303


class TestLoginCsrf:
    """Cookies ignore ports: a page on another port of this host (or, over http, a sibling
    subdomain) can set the sign-in form's cookie in the victim's browser and post the form
    with the attacker's own key, signing the victim in to the attacker's organization."""

    async def test_a_token_the_server_did_not_issue_is_refused(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        planted = "attacker-chosen-token-0123456789"
        client.cookies.set("kennel_login", planted, domain="kennel.test", path="/login")
        r = await client.post("/login", data={"api_key": member.key, "csrf": planted})
        assert r.status_code == 403
        assert "kennel_session" not in " ".join(r.headers.get_list("set-cookie"))

    async def test_a_post_from_another_origin_is_refused_even_with_an_issued_token(
        self, app: FastAPI, member: Member
    ) -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kennel.test") as mine:
            token = csrf_of((await mine.get("/login")).text)  # the attacker's own, issued
        async with httpx.AsyncClient(transport=transport, base_url="http://kennel.test") as victim:
            victim.cookies.set("kennel_login", token, domain="kennel.test", path="/login")
            r = await victim.post(
                "/login",
                data={"api_key": member.key, "csrf": token},
                headers={"Origin": "http://kennel.test:8081"},
            )
            assert r.status_code == 403
            assert "kennel_session" not in " ".join(r.headers.get_list("set-cookie"))
            same_site = await victim.post(  # the form of the refusal page, from this origin
                "/login",
                data={"api_key": member.key, "csrf": csrf_of(r.text)},
                headers={"Origin": "http://kennel.test"},
            )
            assert same_site.status_code == 303

    async def test_an_expired_token_is_refused(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        rt = app.state.runtime
        old = login_token(await server_secret(rt.db), now=time.time() - LOGIN_TOKEN_SECONDS - 120)
        client.cookies.set("kennel_login", old, domain="kennel.test", path="/login")
        r = await client.post("/login", data={"api_key": member.key, "csrf": old})
        assert r.status_code == 403

    async def test_a_signed_in_form_from_another_origin_changes_nothing(
        self, app: FastAPI, member: Member
    ) -> None:
        async with signed_in_browser(app, member) as browser:
            page = await browser.get("/workers")
            r = await browser.post(
                "/workers",
                data={"title": "Cross-origin", "csrf": csrf_of(page.text)},
                headers={"Origin": "http://kennel.test:8081"},
            )
            assert r.status_code == 403
            listing = await browser.get("/workers")
            assert "Cross-origin" not in listing.text
