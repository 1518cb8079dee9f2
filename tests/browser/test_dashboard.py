"""The dashboard in Chromium: sign in, make a worker, watch a run, files, sign out, the
protections (CSRF across origins, escaped titles, other organizations' pages), and the worker
page's panels (a delayed schedule that starts its task, a webhook whose delivery is logged)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import BrowserPage
from tests.factories.local_http import QuietHandler, serve_handler
from tests.factories.receiver import Receiver

pytestmark = pytest.mark.e2e

WORKER_URL = re.compile(r".*/workers/wrk_[0-9a-z]+$")


def new_worker_from_form(browser_page: BrowserPage, title: str) -> str:
    """Fill in the New worker form; the new worker's id."""
    page = browser_page.page
    page.goto("/workers")
    page.get_by_label("Title", exact=True).fill(title)
    page.get_by_label("Instructions", exact=True).fill("Answer in one line.")
    page.get_by_role("button", name="Create worker").click()
    page.wait_for_url(WORKER_URL)
    return page.url.rsplit("/", 1)[1]


def test_sign_in_make_a_worker_watch_it_run_and_sign_out(browser_page: BrowserPage) -> None:
    page = browser_page.page
    page.goto("/workers")
    expect(page.get_by_label("API key")).to_be_visible()
    browser_page.shot("login")
    browser_page.sign_in(start="/workers")
    assert page.url == browser_page.server.base_url + "/workers"
    browser_page.shot("workers-empty")

    worker_id = new_worker_from_form(browser_page, "Browser Beagle")
    expect(page.locator("h1")).to_have_text("Browser Beagle")
    browser_page.shot("worker-new")

    # Run with a file; the answer streams in while the page stays loaded.
    words = "fetch the ball from the garden and bring it back to the porch before dinner"
    page.get_by_label("Input", exact=True).fill(words)
    page.set_input_files(
        "#files-input",
        files=[{"name": "plan.txt", "mimeType": "text/plain", "buffer": b"walk at noon"}],
    )
    page.get_by_role("button", name="Run").click()
    page.wait_for_url(re.compile(rf".*/workers/{worker_id}#state$"))
    page.evaluate("window.kennelTestMarker = 'same page'")
    answer = page.locator("#answer")
    expected = f"Done: {words}"
    # Part of the answer, while the turn still runs ...
    page.wait_for_function(
        """expected => {
            const text = document.getElementById("answer").textContent;
            return text.length > 0 && text.length < expected.length;
        }""",
        arg=expected,
    )
    expect(page.locator("#live-status")).to_have_text("running")
    # ... then all of it, and the page's other sections brought up to date.
    expect(answer).to_have_text(expected)
    expect(page.locator("#live-status")).to_have_text("completed", timeout=20_000)
    assert page.evaluate("window.kennelTestMarker") == "same page"  # never reloaded
    expect(page.locator("#files")).to_contain_text("plan.txt")
    expect(page.locator("#history")).to_contain_text(words[:40])
    browser_page.shot("worker-after-run")

    with page.expect_download() as downloading:
        page.locator("#files").get_by_role("link", name="plan.txt").click()
    download = downloading.value
    assert download.suggested_filename == "plan.txt"
    with open(download.path(), "rb") as saved:
        assert saved.read() == b"walk at noon"

    page.get_by_role("link", name="Latest task").click()
    page.wait_for_url(re.compile(r".*/tasks/tsk_[0-9a-z]+$"))
    expect(page.locator("#turn-1")).to_contain_text(expected)
    expect(page.locator("#turn-1")).to_contain_text("tokens in")
    browser_page.shot("task")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto(f"/workers/{worker_id}")
    assert page.url.startswith(browser_page.server.base_url + "/login?next=")
    expect(page.get_by_label("API key")).to_be_visible()
    browser_page.shot("signed-out")


@contextlib.contextmanager
def forging_site(target: str, host: str) -> Iterator[str]:
    """A page on another origin with a form that posts to `target`, without a CSRF token."""
    body = (
        "<!doctype html><title>Win a prize</title>"
        f'<form method="post" action="{target}/workers">'
        '<input name="title" value="Forged worker">'
        '<button type="submit">Claim</button></form>'
    ).encode()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve_handler(Handler) as base_url:
        yield base_url.replace("127.0.0.1", host, 1) + "/"


def test_a_form_posted_from_another_origin_is_refused(browser_page: BrowserPage) -> None:
    page = browser_page.page
    browser_page.sign_in()
    target = browser_page.server.base_url
    # Another port of the same host is the same site, so the session cookie goes along: its
    # Origin and the missing CSRF token are what refuse the post (403). From `localhost`,
    # another site, the cookie stays home (SameSite=Lax): the post finds no session and is
    # sent to sign in, which sends this signed-in browser on to its workers.
    for host in ("127.0.0.1", "localhost"):
        with forging_site(target, host) as evil:
            page.goto(evil)
            with page.expect_navigation() as navigation:
                page.get_by_role("button", name="Claim").click()
            if host == "127.0.0.1":
                assert navigation.value is not None
                assert navigation.value.status == 403
                expect(page.locator("body")).to_contain_text("security token")
                browser_page.ignore_errors()  # the 403 itself
                browser_page.shot("forged-post-refused")
            else:
                page.wait_for_url(target + "/")
        assert not WORKER_URL.match(page.url)
        expect(page.locator("body")).not_to_contain_text("Forged worker")
    with browser_page.server.http(browser_page.server.api_key) as api:
        titles = [w["title"] for w in api.get("/api/workers").json()["workers"]]
    assert "Forged worker" not in titles


def test_a_script_in_a_title_is_shown_as_text(browser_page: BrowserPage) -> None:
    page = browser_page.page
    browser_page.sign_in()
    title = "<script>window.kennelOwned = true</script><b>Bold</b>"
    new_worker_from_form(browser_page, title)
    expect(page.locator("h1")).to_have_text(title)
    assert page.evaluate("window.kennelOwned") is None
    assert page.locator("h1 b").count() == 0
    browser_page.shot("worker-script-title")
    page.goto("/workers")
    expect(page.get_by_role("link", name=title)).to_be_visible()
    assert page.evaluate("window.kennelOwned") is None
    browser_page.shot("workers-script-title")


def test_another_organizations_worker_is_not_found(browser_page: BrowserPage) -> None:
    page = browser_page.page
    server = browser_page.server
    with server.http(server.api_key) as api:
        worker = api.post("/api/workers", json={"title": "Admin's own"}).json()
    outsider = server.create_member(org="elsewhere")
    browser_page.sign_in(outsider.key)
    response = page.goto(f"/workers/{worker['id']}")
    assert response is not None
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    assert "Admin's own" not in page.content()
    browser_page.ignore_errors()
    browser_page.shot("not-found")


def worker_via_api(browser_page: BrowserPage, title: str) -> str:
    with browser_page.server.http(browser_page.server.api_key) as api:
        r = api.post("/api/workers", json={"title": title, "instructions": "Answer briefly."})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def test_a_delayed_schedule_from_the_form_starts_its_task(browser_page: BrowserPage) -> None:
    page = browser_page.page
    browser_page.sign_in()
    worker_id = worker_via_api(browser_page, "Scheduled Beagle")
    page.goto(f"/workers/{worker_id}#panel-schedules")
    panel = page.locator("#panel-schedules")
    words = "nap for two seconds then bark once"
    panel.get_by_label("Task input").fill(words)
    panel.get_by_label("When").select_option("delayed")
    expect(panel.get_by_label("Cron expression", exact=False)).to_be_hidden()  # not this kind
    panel.get_by_label("Delay (seconds)").fill("2")
    panel.get_by_role("button", name="Preview").click()
    expect(page.locator("#schedule-preview")).to_contain_text("It would run once")
    expect(page.locator("#schedule-preview li")).to_have_count(1)
    expect(panel.locator("#schedule-list")).to_contain_text("No schedules.")  # nothing saved
    browser_page.shot("schedule-preview")

    panel = page.locator("#panel-schedules")
    expect(panel.get_by_label("Delay (seconds)")).to_have_value("2")  # the form kept it
    panel.get_by_role("button", name="Create schedule").click()
    page.wait_for_url(re.compile(rf".*/workers/{worker_id}#panel-schedules$"))
    expect(page.locator("#schedule-list")).to_contain_text(words)
    browser_page.shot("schedule-created")
    page.evaluate("window.kennelTestMarker = 'same page'")
    # No reload by the test: the page looks again when the schedule comes due, then follows
    # the turn it started.
    expect(page.locator("#history")).to_contain_text(words[:40], timeout=15_000)
    expect(page.locator("#history")).to_contain_text("schedule")  # its trigger
    expect(page.locator("#live-status")).to_have_text("completed", timeout=15_000)
    expect(page.locator("#answer")).to_have_text(f"Done: {words}")
    expect(page.locator("#schedule-list")).to_contain_text("No schedules.")  # a one-shot
    # ... which stays reachable under Past schedules, with its run and the task it started.
    past = page.locator("#past-schedules")
    expect(past).to_contain_text(words)
    past.locator("summary").first.click()
    past.get_by_text("Runs (1)").click()
    expect(past.locator("table.runs")).to_contain_text("started")
    expect(past.get_by_role("link", name="task")).to_be_visible()
    assert page.evaluate("window.kennelTestMarker") == "same page"
    browser_page.shot("schedule-fired")


def test_a_webhook_from_the_form_logs_its_delivery(browser_page: BrowserPage) -> None:
    page = browser_page.page
    server = browser_page.server
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base_url)
    browser_page.sign_in()
    worker_id = worker_via_api(browser_page, "Hooked Beagle")
    with Receiver() as receiver:
        page.goto(f"/workers/{worker_id}#panel-webhook")
        panel = page.locator("#panel-webhook")
        panel.get_by_label("Webhook URL").fill(receiver.url("/kennel"))
        panel.get_by_role("button", name="Set webhook").click()
        page.wait_for_url(re.compile(rf".*/workers/{worker_id}#panel-webhook$"))
        with server.http(server.api_key) as api:
            token = api.get(f"/api/workers/{worker_id}/webhook").json()["token"]
        expect(page.locator("#webhook-token")).to_be_hidden()  # until asked for
        page.get_by_text("Show token").click()
        expect(page.locator("#webhook-token")).to_have_text(token)
        page.locator("#panel-webhook").get_by_role("button", name="Copy").click()
        expect(page.locator("#panel-webhook").get_by_role("button", name="Copied")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == token

        page.locator("#tabs").get_by_role("link", name="Overview").click()
        page.get_by_label("Input", exact=True).fill("ring the bell")
        page.locator("#run").get_by_role("button", name="Run").click()
        expect(page.locator("#live-status")).to_have_text("completed", timeout=15_000)
        (delivered,) = receiver.wait_for(1)
        assert delivered.headers["x-handinger-token"] == token
        # The delivery is sent after the turn ends, often after the page refreshed at its
        # end, and logged once the receiver has answered: wait for the log through the
        # API, then reload to see it.
        with server.http(server.api_key) as api:

            def logged() -> bool:
                logs = api.get(f"/api/workers/{worker_id}/webhook/executions").json()["logs"]
                return bool(logs) and logs[0]["responseStatus"] == 200

            server.wait_for("the delivery logged with its answer", logged, timeout=30)
        page.goto(f"/workers/{worker_id}#panel-webhook")
        page.reload()  # the goto only moved the #fragment: load the page afresh
        log = page.locator("#webhook-log")
        expect(log.locator("tr.execution")).to_have_count(1)
        expect(log).to_contain_text("success")
        expect(log).to_contain_text("200")
        log.get_by_role("button", name="Redeliver").click()
        page.wait_for_url(re.compile(rf".*/workers/{worker_id}#panel-webhook$"))
        expect(page.locator("#webhook-log tr.execution")).to_have_count(2)
        assert len(receiver.wait_for(2)) == 2

    page.locator("#tabs").get_by_role("link", name="E-mail").click()
    email = page.locator("#panel-email")
    email.get_by_label("Allowed senders", exact=False).fill("ann@example.com\n@example.org")
    email.get_by_role("button", name="Save senders").click()
    page.wait_for_url(re.compile(rf".*/workers/{worker_id}#panel-email$"))
    expect(page.locator("#e-senders")).to_have_value("@example.org\nann@example.com")
    browser_page.shot("worker-panels")
