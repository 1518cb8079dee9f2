"""The dashboard's pages in process: forms, CSRF, escaping, visibility and the live stream."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from tests.factories import Member, make_member
from tests.factories.dashboard import csrf_of, signed_in_browser
from tests.factories.polling import eventually
from tests.factories.workers import new_worker, new_worker_id

SCRIPT_TITLE = "<script>alert('owned')</script>"


@pytest_asyncio.fixture
async def browser(app: FastAPI, member: Member) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in_browser(app, member) as signed_in:
        yield signed_in


async def finished_state(client: httpx.AsyncClient, member: Member, worker_id: str) -> dict:
    """The `Worker` object once its latest turn has ended."""

    async def state() -> dict:
        return dict((await client.get(f"/api/workers/{worker_id}", headers=member.headers)).json())

    found = await eventually(state, lambda s: s["status"] == "completed", f"{worker_id}'s turn")
    return dict(found)


async def run_from_page(
    browser: httpx.AsyncClient, worker_id: str, *, files: list | None = None, **fields: str
) -> httpx.Response:
    page = await browser.get(f"/workers/{worker_id}")
    data = {"csrf": csrf_of(page.text), "budget": "standard", **fields}
    return await browser.post(f"/workers/{worker_id}/run", data=data, files=files or [])


class TestWorkersPage:
    async def test_lists_the_visible_workers_with_their_last_run(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        ran = await new_worker(client, member, title="Ran once", summary="Reads things")
        idle = await new_worker(client, member, title="Never ran")
        r = await client.post(
            "/api/tasks", json={"input": "hello", "workerId": ran["id"]}, headers=member.headers
        )
        assert r.status_code == 200, r.text
        credits = r.json()["usage"]["credits"]
        for path in ("/", "/workers"):
            page = await browser.get(path)
            assert page.status_code == 200
            assert "Ran once" in page.text
            assert "Reads things" in page.text
            assert f'href="/workers/{idle["id"]}"' in page.text
        row = page.text.split(f'href="/workers/{ran["id"]}"')[1].split("</tr>")[0]
        assert "status-completed" in row
        assert "UTC" in row
        assert f'<td class="num">{credits}</td>' in row
        never = page.text.split(f'href="/workers/{idle["id"]}"')[1].split("</tr>")[0]
        assert "never ran" in never

    async def test_new_worker_form(self, browser: httpx.AsyncClient) -> None:
        page = await browser.get("/workers")
        schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
        r = await browser.post(
            "/workers",
            data={
                "csrf": csrf_of(page.text),
                "title": "Form Beagle",
                "instructions": "Answer briefly.\r\nAlways.",
                "prompt": "",
                "outputSchema": json.dumps(schema),
                "visibility": "private",
            },
        )
        assert r.status_code == 303
        worker_id = r.headers["location"].removeprefix("/workers/")
        page = await browser.get(r.headers["location"])
        assert page.status_code == 200
        assert "<h1>Form Beagle</h1>" in page.text
        assert '<span class="tag">private</span>' in page.text
        assert "Answer briefly.\nAlways.</textarea>" in page.text
        assert worker_id.startswith("wrk_")

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("outputSchema", '{"type": "object",', "not valid JSON"),
            ("outputSchema", "[1, 2]", "must be a JSON object"),
            ("outputSchema", '{"type": "string"}', "outputSchema"),
            ("title", "x" * 201, "200"),
            ("visibility", "everyone", "visibility"),
        ],
    )
    async def test_a_refused_field_says_why_next_to_it(
        self, browser: httpx.AsyncClient, field: str, value: str, message: str
    ) -> None:
        page = await browser.get("/workers")
        before = page.text.count('class="title"')
        r = await browser.post(
            "/workers", data={"csrf": csrf_of(page.text), "instructions": "Keep me", field: value}
        )
        assert r.status_code == 400
        error = re.search(rf'<p class="field-error" id="{field}-error"[^>]*>(.*?)</p>', r.text)
        assert error, r.text
        assert message in error.group(1)
        assert "Keep me</textarea>" in r.text  # what was typed stays
        assert (await browser.get("/workers")).text.count('class="title"') == before


class TestWorkerPage:
    async def test_shows_the_template_and_the_live_state(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        worker_id = await new_worker_id(
            client, member, title="Counter", instructions="Count.", outputSchema=schema
        )
        r = await run_from_page(browser, worker_id, input="Count to three")
        assert (r.status_code, r.headers["location"]) == (303, f"/workers/{worker_id}#state")
        state = await finished_state(client, member, worker_id)
        assert state["metadata"]["triggeredBy"] == "ui"
        page = await browser.get(f"/workers/{worker_id}")
        assert page.status_code == 200
        assert 'data-running="false"' in page.text
        assert f'data-events="/workers/{worker_id}/events"' in page.text
        assert "status-completed" in page.text
        assert "Structured output" in page.text
        pretty = json.dumps(state["structured_output"], indent=2).replace('"', "&#34;")
        assert pretty in page.text
        assert "Count to three" in page.text  # the conversation
        assert "Count.</textarea>" in page.text  # the template
        assert "Credits, last 30 days" in page.text
        assert "<svg" in page.text
        assert page.text.count("<rect") == 30
        history = page.text.split('id="history"')[1]
        assert "Count to three</a>" in history
        assert "<td>ui</td>" in history

    async def test_save_template_changes_only_what_changed(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member, title="Old", instructions="Same")
        page = await browser.get(f"/workers/{worker_id}")
        form = {
            "csrf": csrf_of(page.text),
            "title": "New title",
            "summary": "",
            "instructions": "Same",
            "outputSchema": "",
            "visibility": "public",
        }
        r = await browser.post(f"/workers/{worker_id}/template", data=form)
        assert (r.status_code, r.headers["location"]) == (303, f"/workers/{worker_id}#template")
        template = (await client.get("/api/workers", headers=member.headers)).json()["workers"][0]
        assert (template["title"], template["instructionsVersion"]) == ("New title", 1)
        r = await browser.post(
            f"/workers/{worker_id}/template", data={**form, "instructions": "Different"}
        )
        assert r.status_code == 303
        template = (await client.get("/api/workers", headers=member.headers)).json()["workers"][0]
        assert (template["instructions"], template["instructionsVersion"]) == ("Different", 2)
        r = await browser.post(
            f"/workers/{worker_id}/template", data={**form, "outputSchema": "nope"}
        )
        assert r.status_code == 400
        assert 'id="outputSchema-error"' in r.text
        assert ">nope</textarea>" in r.text

    async def test_the_template_names_the_mcp_servers(
        self,
        client: httpx.AsyncClient,
        member: Member,
        browser: httpx.AsyncClient,
        reconfigure: Callable[..., None],
    ) -> None:
        reconfigure(allow_private_webhooks=True)
        for name in ("docs", "tickets"):
            r = await client.post(
                "/api/mcp-servers",
                json={"name": name, "url": f"http://127.0.0.1:9/{name}"},
                headers=member.headers,
            )
            assert r.status_code == 201, r.text
        worker_id = await new_worker_id(client, member, title="Helper", mcpServers=["docs"])
        page = await browser.get(f"/workers/{worker_id}")
        assert 'name="mcpServers" maxlength="400" value="docs"' in page.text
        assert "Registered: docs, tickets." in page.text
        form = {
            "csrf": csrf_of(page.text),
            "title": "Helper",
            "summary": "",
            "instructions": "",
            "outputSchema": "",
            "mcpServers": "docs, tickets",
        }
        r = await browser.post(f"/workers/{worker_id}/template", data=form)
        assert r.status_code == 303
        worker = (await client.get("/api/workers", headers=member.headers)).json()["workers"][0]
        assert worker["mcpServers"] == ["docs", "tickets"]
        r = await browser.post(
            f"/workers/{worker_id}/template", data={**form, "mcpServers": "nowhere"}
        )
        assert r.status_code == 400
        assert 'id="mcpServers-error"' in r.text
        assert "nowhere" in r.text

    async def test_others_may_edit_but_not_change_visibility(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        colleague = await make_member(app, organization=member.organization)
        worker_id = await new_worker_id(client, member, title="Shared")
        async with signed_in_browser(app, colleague) as theirs:
            page = await theirs.get(f"/workers/{worker_id}")
            assert page.status_code == 200
            assert 'name="visibility"' not in page.text
            r = await theirs.post(
                f"/workers/{worker_id}/template",
                data={"csrf": csrf_of(page.text), "title": "Shared", "visibility": "private"},
            )
            assert r.status_code == 403
            assert "creator" in r.text

    async def test_run_with_a_file_then_download_it(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member)
        files = [("files", ("notes/plan.txt", b"walk at noon", "text/plain"))]
        r = await run_from_page(browser, worker_id, input="Read my plan", files=files)
        assert r.status_code == 303
        await finished_state(client, member, worker_id)
        page = await browser.get(f"/workers/{worker_id}")
        assert f'href="/workers/{worker_id}/files/notes/plan.txt"' in page.text
        download = await browser.get(f"/workers/{worker_id}/files/notes/plan.txt")
        assert download.status_code == 200
        assert download.content == b"walk at noon"
        assert download.headers["content-disposition"] == 'attachment; filename="plan.txt"'
        assert "sandbox" in download.headers["content-security-policy"]
        missing = await browser.get(f"/workers/{worker_id}/files/nope.txt")
        assert missing.status_code == 404
        escape = await browser.get(f"/workers/{worker_id}/files/..%2F..%2Fkennel.sqlite3")
        assert escape.status_code == 404

    async def test_uploads_follow_the_apis_rules(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member)
        files = [("files", (".hidden", b"x", "text/plain"))]
        r = await run_from_page(browser, worker_id, input="Keep this input", files=files)
        assert r.status_code == 400
        assert 'id="files-error"' in r.text
        assert "Keep this input</textarea>" in r.text
        listed = await client.get(
            "/api/tasks", params={"workerId": worker_id}, headers=member.headers
        )
        assert listed.json()["tasks"] == []

    async def test_a_follow_up_continues_the_latest_task(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member)
        assert (await run_from_page(browser, worker_id, input="First")).status_code == 303
        first = await finished_state(client, member, worker_id)
        task_id = first["metadata"]["taskId"]
        r = await run_from_page(browser, worker_id, input="Second", taskId=task_id)
        assert r.status_code == 303
        second = await finished_state(client, member, worker_id)
        assert second["metadata"]["taskId"] == task_id
        task = await browser.get(f"/tasks/{task_id}")
        assert 'id="turn-2"' in task.text

    async def test_the_event_stream_is_the_apis(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member)
        await run_from_page(browser, worker_id, input="Stream me")
        await finished_state(client, member, worker_id)
        ours = await browser.get(f"/workers/{worker_id}/events")
        api = await client.get(
            f"/api/workers/{worker_id}", params={"stream": "true"}, headers=member.headers
        )
        assert ours.status_code == 200
        assert ours.headers["content-type"].startswith("text/event-stream")
        # The same events; only the random ids of text parts differ from one stream to another.
        uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
        assert uuid.sub("ID", ours.text) == uuid.sub("ID", api.text)
        assert '"type":"text-delta"' in ours.text
        assert ours.text.rstrip().endswith("data: [DONE]")


class TestTaskPage:
    async def test_turns_and_archive(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member, title="Archivist")
        files = [("files", ("in.txt", b"data", "text/plain"))]
        await run_from_page(browser, worker_id, input="Remember this", files=files)
        state = await finished_state(client, member, worker_id)
        task_id = state["metadata"]["taskId"]
        page = await browser.get(f"/tasks/{task_id}")
        assert page.status_code == 200
        turn = page.text.split('id="turn-1"')[1]
        assert "Remember this" in turn
        assert state["output_text"] in turn
        assert "tokens in" in turn
        assert f'href="/workers/{worker_id}/files/in.txt"' in turn
        assert 'href="/workers/' + worker_id + '">Archivist</a>' in page.text
        form = {"csrf": csrf_of(page.text)}
        asked = await browser.post(f"/tasks/{task_id}/archive", data=form)
        assert asked.status_code == 200
        assert "Archive this task?" in asked.text
        assert 'id="archived"' not in (await browser.get(f"/tasks/{task_id}")).text
        r = await browser.post(f"/tasks/{task_id}/archive", data={**form, "confirmed": "yes"})
        assert (r.status_code, r.headers["location"]) == (303, f"/tasks/{task_id}")
        page = await browser.get(f"/tasks/{task_id}")
        assert 'id="archived"' in page.text
        assert ">Archive</button>" not in page.text
        found = await client.get(f"/api/tasks/{task_id}", headers=member.headers)
        assert found.json()["task"]["archived"] is True

    async def test_only_the_creator_may_archive(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await client.post(
            "/api/tasks", json={"input": "x", "workerId": worker_id}, headers=member.headers
        )
        task_id = r.json()["metadata"]["taskId"]
        colleague = await make_member(app, organization=member.organization)
        async with signed_in_browser(app, colleague) as theirs:
            page = await theirs.get(f"/tasks/{task_id}")
            assert page.status_code == 200
            assert ">Archive</button>" not in page.text
            form = {"csrf": csrf_of(page.text), "confirmed": "yes"}
            r = await theirs.post(f"/tasks/{task_id}/archive", data=form)
            assert r.status_code == 403


class TestCsrf:
    async def test_every_form_is_refused_without_the_token(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member, title="Untouched")
        r = await client.post(
            "/api/tasks", json={"input": "x", "workerId": worker_id}, headers=member.headers
        )
        task_id = r.json()["metadata"]["taskId"]
        other = await make_member(app, organization=member.organization)
        async with signed_in_browser(app, other) as theirs:
            foreign_token = csrf_of((await theirs.get("/workers")).text)
        posts = {
            "/workers": {"title": "Forged"},
            f"/workers/{worker_id}/template": {"title": "Forged"},
            f"/workers/{worker_id}/run": {"input": "Forged"},
            f"/tasks/{task_id}/archive": {},
            "/logout": {},
        }
        for path, data in posts.items():
            for token in (None, "", "0" * 64, foreign_token):
                body = data if token is None else {**data, "csrf": token}
                r = await browser.post(path, data=body)
                assert r.status_code == 403, (path, token, r.text)
                assert "security token" in r.text
        workers = (await client.get("/api/workers", headers=member.headers)).json()["workers"]
        assert [w["title"] for w in workers] == ["Untouched"]
        tasks = await client.get(
            "/api/tasks", params={"workerId": worker_id}, headers=member.headers
        )
        assert [t["id"] for t in tasks.json()["tasks"]] == [task_id]
        assert (await browser.get("/workers")).status_code == 200  # still signed in


class TestEscaping:
    async def test_user_text_is_shown_as_text(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        page = await browser.get("/workers")
        r = await browser.post(
            "/workers",
            data={"csrf": csrf_of(page.text), "title": SCRIPT_TITLE, "summary": "<b>bold</b>"},
        )
        worker_id = r.headers["location"].removeprefix("/workers/")
        answer_html = '<img src=x onerror="alert(1)">'
        # (No quotes in the file name: multipart clients send them percent-encoded.)
        files = [("files", ("<img src=x onerror=alert(2)>.txt", b"x", "text/plain"))]
        await run_from_page(browser, worker_id, input=answer_html, files=files)
        state = await finished_state(client, member, worker_id)
        assert answer_html in state["output_text"]
        task_path = f"/tasks/{state['metadata']['taskId']}"
        for path in ("/workers", f"/workers/{worker_id}", task_path):
            html = (await browser.get(path)).text
            assert "<script>alert" not in html, path
            assert "<img src=x" not in html, path
            assert "<b>bold" not in html, path
        worker_page = (await browser.get(f"/workers/{worker_id}")).text
        assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in worker_page
        assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in worker_page
        assert "&lt;img src=x onerror=alert(2)&gt;.txt</a>" in worker_page


class TestHeaders:
    async def test_every_page_carries_the_security_headers(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await client.post(
            "/api/tasks", json={"input": "x", "workerId": worker_id}, headers=member.headers
        )
        task_id = r.json()["metadata"]["taskId"]
        pages = [
            await client.get("/login"),
            await client.get("/workers"),  # the redirect to sign in
            await browser.get("/workers"),
            await browser.get(f"/workers/{worker_id}"),
            await browser.get(f"/tasks/{task_id}"),
            await browser.get("/workers/wrk_nope"),
            await browser.get("/static/dashboard.css"),
        ]
        for page in pages:
            csp = page.headers["content-security-policy"]
            directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
            assert directives["script-src"] == "'self'", page.url
            assert directives["frame-ancestors"] == "'none'"
            assert "unsafe-inline" not in csp
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["referrer-policy"] == "same-origin"
            assert page.headers["x-content-type-options"] == "nosniff"

    async def test_no_page_holds_inline_script_or_style(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member)
        await run_from_page(browser, worker_id, input="Hello")
        state = await finished_state(client, member, worker_id)
        for path in ("/workers", f"/workers/{worker_id}", f"/tasks/{state['metadata']['taskId']}"):
            html = (await browser.get(path)).text
            assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], path
            assert re.findall(r"\sstyle=|<style|\son[a-z]+=", html) == [], path
        assert re.findall(r"<script(?![^>]*\bsrc=)", (await client.get("/login")).text) == []

    async def test_the_api_and_its_reference_keep_their_own(
        self, client: httpx.AsyncClient
    ) -> None:
        # /docs is Swagger UI, which needs inline script; the API answers JSON.
        assert "content-security-policy" not in (await client.get("/docs")).headers
        assert "content-security-policy" not in (await client.get("/healthz")).headers


class TestVisibility:
    async def test_another_organizations_pages_are_404(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        owner = await make_member(app)
        worker_id = await new_worker_id(client, owner, title="Theirs")
        r = await client.post(
            "/api/tasks",
            data={"input": "secret", "workerId": worker_id},
            files=[("files", ("secret.txt", b"secret", "text/plain"))],
            headers=owner.headers,
        )
        task_id = r.json()["metadata"]["taskId"]
        token = csrf_of((await browser.get("/workers")).text)
        for path in (
            f"/workers/{worker_id}",
            f"/workers/{worker_id}/events",
            f"/workers/{worker_id}/files/secret.txt",
            f"/tasks/{task_id}",
        ):
            r = await browser.get(path)
            assert r.status_code == 404, path
            assert "Theirs" not in r.text
            assert "secret" not in r.text.replace(path, "")
        for path, data in (
            (f"/workers/{worker_id}/template", {"title": "Mine"}),
            (f"/workers/{worker_id}/run", {"input": "hi"}),
            (f"/tasks/{task_id}/archive", {}),
        ):
            r = await browser.post(path, data={**data, "csrf": token})
            assert r.status_code == 404, path
        assert "Theirs" not in (await browser.get("/workers")).text
        theirs = await client.get(f"/api/workers/{worker_id}", headers=owner.headers)
        assert theirs.json()["metadata"]["title"] == "Theirs"

    async def test_a_private_worker_is_404_to_uninvited_colleagues(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member, title="Mine only", visibility="private")
        colleague = await make_member(app, organization=member.organization)
        async with signed_in_browser(app, colleague) as theirs:
            assert (await theirs.get(f"/workers/{worker_id}")).status_code == 404
            assert "Mine only" not in (await theirs.get("/workers")).text
        async with signed_in_browser(app, member) as mine:
            assert (await mine.get(f"/workers/{worker_id}")).status_code == 200
