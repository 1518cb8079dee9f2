"""The dashboard people enjoy (issue 26): a confirm step and a flash message for what changes
or destroys, the worker page in tabs that fit a phone, a running turn's live timeline, the
delivery log's request and response, search and filters, past schedules, one 404 page."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import BrowserPage
from tests.factories.local_http import QuietHandler, serve_handler
from tests.factories.receiver import Receiver

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
TABS = ("Overview", "Tasks", "Schedules", "Webhook", "E-mail", "Template")


def api(browser_page: BrowserPage) -> httpx.Client:
    return browser_page.server.http(browser_page.server.api_key)


def new_worker(browser_page: BrowserPage, title: str, **fields: Any) -> str:
    with api(browser_page) as client:
        r = client.post(
            "/api/workers", json={"title": title, "instructions": "Answer briefly.", **fields}
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def run_task(browser_page: BrowserPage, worker_id: str, words: str) -> dict[str, Any]:
    """A task run through the API, to its end."""
    with api(browser_page) as client:
        r = client.post("/api/tasks", json={"input": words, "workerId": worker_id})
        assert r.status_code in (200, 201, 202), r.text
        started: dict[str, Any] = r.json()["metadata"]  # the Worker object: taskId, turnId

        def ended() -> bool:
            state = client.get(f"/api/workers/{worker_id}").json()
            return state["status"] == "completed" and not state["running"]

        browser_page.server.wait_for("the task's turn to end", ended, timeout=60)
    return started


def confirm_dialog(page: Page, *, accept: bool, says: str) -> None:
    """The page's own confirm dialog is open, says `says`; accept or keep."""
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(says)
    page.locator("#confirm-ok" if accept else "#confirm-cancel").click()
    expect(dialog).to_be_hidden()


def open_page(page: Page, path: str) -> None:
    """Load `path` afresh: a `goto` that changes only the #fragment would not."""
    page.goto(path)
    page.reload()


def flash(page: Page, text: str) -> None:
    expect(page.locator("#flash")).to_have_text(re.compile(re.escape(text)))


# -- 1. confirm and flash --------------------------------------------------------------------


def test_what_changes_or_destroys_asks_first_and_says_what_it_did(
    browser_page: BrowserPage,
) -> None:
    page = browser_page.page
    server = browser_page.server
    browser_page.sign_in()
    worker_id = new_worker(browser_page, "Careful Corgi")
    with api(browser_page) as client:
        client.put(f"/api/workers/{worker_id}/webhook", json={"url": "https://example.com/h"})
        token = client.get(f"/api/workers/{worker_id}/webhook").json()["token"]

    page.goto(f"/workers/{worker_id}#panel-webhook")
    panel = page.locator("#panel-webhook")
    # Kept: nothing posted, the token is the same, no flash.
    panel.get_by_role("button", name="Regenerate token").click()
    confirm_dialog(page, accept=False, says="Make a new token?")
    assert page.url.endswith("#panel-webhook")
    expect(page.locator("#flash")).to_have_count(0)
    with api(browser_page) as client:
        assert client.get(f"/api/workers/{worker_id}/webhook").json()["token"] == token
    browser_page.shot("confirm-kept")

    # Confirmed: done, and the page says so once.
    panel.get_by_role("button", name="Regenerate token").click()
    confirm_dialog(page, accept=True, says="Make a new token?")
    flash(page, "New token made")
    with api(browser_page) as client:
        assert client.get(f"/api/workers/{worker_id}/webhook").json()["token"] != token
    expect(page.locator("#panel-webhook")).to_be_visible()  # its tab, after the redirect
    browser_page.shot("flash-token")
    page.reload()
    expect(page.locator("#flash")).to_have_count(0)

    page.locator("#panel-webhook").get_by_role("button", name="Remove webhook").click()
    confirm_dialog(page, accept=True, says="Remove the webhook?")
    flash(page, "Webhook removed")
    with api(browser_page) as client:
        assert client.get(f"/api/workers/{worker_id}/webhook").json()["url"] is None

    # A schedule cancelled from the page is kept under Past schedules.
    with api(browser_page) as client:
        r = client.post(
            f"/api/workers/{worker_id}/schedules",
            json={"input": "bark at the moon", "when": {"type": "cron", "cron": "0 3 * * *"}},
        )
        assert r.status_code == 201, r.text
    open_page(page, f"/workers/{worker_id}#panel-schedules")
    page.locator("#schedule-list").get_by_role("button", name="Cancel").click()
    confirm_dialog(page, accept=True, says="Cancel this schedule?")
    flash(page, "Schedule cancelled")
    expect(page.locator("#schedule-list")).to_contain_text("No schedules.")
    past = page.locator("#past-schedules")
    expect(past).to_contain_text("Past schedules (1)")
    past.locator("summary").first.click()
    expect(past).to_contain_text("bark at the moon")
    expect(past).to_contain_text("cancelled")
    browser_page.shot("schedule-cancelled")

    # Archive a task.
    started = run_task(browser_page, worker_id, "dig a small hole")
    page.goto(f"/tasks/{started['taskId']}")
    page.get_by_role("button", name="Archive").click()
    confirm_dialog(page, accept=True, says="Archive this task?")
    flash(page, "Task archived")
    expect(page.locator("#archived")).to_be_visible()

    # Delete the worker: back on the list, which no longer holds it.
    page.goto(f"/workers/{worker_id}#template")
    page.get_by_role("button", name="Delete worker").click()
    expect(page.locator("#confirm-subject")).to_have_text("Careful Corgi")
    confirm_dialog(page, accept=True, says="Delete this worker?")
    page.wait_for_url(server.base_url + "/workers")
    flash(page, "Worker deleted")
    expect(page.locator("main")).not_to_contain_text("Careful Corgi", ignore_case=False)
    browser_page.shot("flash-worker-deleted")


def test_without_javascript_a_page_asks_instead(browser_page: BrowserPage) -> None:
    server = browser_page.server
    worker_id = new_worker(browser_page, "Scriptless Spaniel")
    with api(browser_page) as client:
        client.put(f"/api/workers/{worker_id}/webhook", json={"url": "https://example.com/h"})
    browser = browser_page.page.context.browser
    assert browser is not None
    context = browser.new_context(base_url=server.base_url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("API key").fill(server.api_key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(server.base_url + "/")
        page.goto(f"/workers/{worker_id}")
        expect(page.locator("#panel-webhook")).to_be_visible()  # every panel shows
        page.locator("#panel-webhook").get_by_role("button", name="Remove webhook").click()
        expect(page.locator("h1")).to_have_text("Remove webhook?")
        with api(browser_page) as client:
            assert client.get(f"/api/workers/{worker_id}/webhook").json()["url"] is not None
        page.get_by_role("link", name="Keep it").click()
        page.wait_for_url(re.compile(rf".*/workers/{worker_id}#panel-webhook$"))
        page.locator("#panel-webhook").get_by_role("button", name="Remove webhook").click()
        page.locator("#confirm-page").get_by_role("button", name="Remove webhook").click()
        flash(page, "Webhook removed")
        with api(browser_page) as client:
            assert client.get(f"/api/workers/{worker_id}/webhook").json()["url"] is None
    finally:
        context.close()


def test_a_planted_flash_cookie_shows_no_text_of_its_own(browser_page: BrowserPage) -> None:
    page = browser_page.page
    browser_page.sign_in()
    url = browser_page.server.base_url
    page.context.add_cookies(
        [{"name": "kennel_flash", "value": "<script>window.kennelOwned=1</script>", "url": url}]
    )
    page.goto("/workers")
    expect(page.locator("#flash")).to_have_count(0)
    assert page.evaluate("window.kennelOwned") is None
    assert "kennelOwned" not in page.content()
    # A known key shows its fixed line, once.
    page.context.add_cookies([{"name": "kennel_flash", "value": "senders-saved", "url": url}])
    page.goto("/workers")
    flash(page, "Allowed senders saved.")
    page.goto("/workers")
    expect(page.locator("#flash")).to_have_count(0)


# -- 2. tabs on a phone ----------------------------------------------------------------------


def overflow(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def test_the_worker_page_in_tabs_fits_a_phone(browser_page: BrowserPage) -> None:
    page = browser_page.page
    page.set_viewport_size(PHONE)
    browser_page.sign_in()
    long_title = "A worker with a rather long title that goes on " + "and on " * 6
    worker_id = new_worker(browser_page, long_title, summary="Checks the phone layout")
    with Receiver() as receiver:
        with api(browser_page) as client:
            client.put(f"/api/workers/{worker_id}/webhook", json={"url": receiver.url("/k")})
            client.post(
                f"/api/workers/{worker_id}/schedules",
                json={
                    "input": "water the plants",
                    "when": {"type": "interval", "intervalSeconds": 3600},
                },
            )
        run_task(browser_page, worker_id, "save the list to a-very-long-file-name-for-phones.txt")
        with api(browser_page) as client:
            browser_page.server.wait_for(
                "the delivery logged",
                lambda: client.get(f"/api/workers/{worker_id}/webhook/executions").json()["logs"],
            )
    page.goto(f"/workers/{worker_id}")
    tabs = page.locator("#tabs")
    for name in TABS:
        tabs.get_by_role("link", name=name, exact=True).click()
        current = tabs.locator("a.current")
        expect(current).to_have_text(name)
        # One panel shows at a time.
        expect(page.locator(".tab-panel.active")).to_have_count(1)
        assert page.locator(".tab-panel:visible").count() == 1
        width = overflow(page)
        assert width <= PHONE["width"], f"the {name} tab is {width} px wide"
        browser_page.shot(f"phone-{name.lower()}")
    # The old anchors open their tab.
    for anchor, tab in (("#panel-webhook", "Webhook"), ("#history", "Tasks"), ("#run", "Overview")):
        open_page(page, f"/workers/{worker_id}{anchor}")
        expect(tabs.locator("a.current")).to_have_text(tab)
        expect(page.locator(anchor)).to_be_visible()
    task_link = page.locator("#history a").first.get_attribute("href")
    assert task_link
    for path in ("/workers", task_link):
        page.goto(path)
        assert overflow(page) <= PHONE["width"], f"{path} is {overflow(page)} px wide"


# -- 3. the live timeline --------------------------------------------------------------------


@contextlib.contextmanager
def page_server(title: str) -> Iterator[str]:
    body = f"<!doctype html><title>{title}</title><p>Bones are buried by the oak.</p>".encode()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve_handler(Handler) as base_url:
        yield base_url


def elapsed_seconds(page: Page) -> float:
    text = page.locator("#elapsed").inner_text()
    match = re.fullmatch(r"(?:(\d+) min )?([\d.]+) s", text.strip())
    assert match, text
    return int(match.group(1) or 0) * 60 + float(match.group(2))


def test_a_running_turn_shows_its_timeline(browser_page: BrowserPage) -> None:
    page = browser_page.page
    browser_page.sign_in()
    worker_id = new_worker(browser_page, "Timeline Terrier")
    with page_server("Where the bones are") as site:
        page.goto(f"/workers/{worker_id}")
        # A long answer streams in chunks 0.3 s apart: seconds to watch the turn run.
        words = (
            f"Read {site}/bones and tell me where the bones are buried in the garden today, "
            "which of the dogs buried them there, and when they will dig them up again"
        )
        page.get_by_label("Input", exact=True).fill(words)
        page.locator("#run").get_by_role("button", name="Run").click()
        page.wait_for_url(re.compile(rf".*/workers/{worker_id}#state$"))
        flash(page, "Task started")
        timeline = page.locator("#timeline")
        # While it runs: the clock ticks, the tool call and the source it found show.
        expect(page.locator("#live")).to_be_visible()
        expect(timeline.locator(".step-model").first).to_contain_text("Model request 1")
        expect(timeline.locator(".step-tool")).to_contain_text("Tool web_fetch")
        expect(page.locator("#live-sources")).to_contain_text("Where the bones are")
        first = elapsed_seconds(page)
        page.wait_for_function(
            "first => parseFloat(document.getElementById('elapsed').textContent) > first + 0.3",
            arg=first,
        )
        running = page.locator("#live-status").inner_text()
        browser_page.shot("timeline-running")
        assert running == "running", "the turn ended before the sources could be seen live"
        link = page.locator("#live-sources a")
        assert link.get_attribute("href") == f"{site}/bones"
        # At the end: every step with its duration, the timeline kept.
        expect(page.locator("#live-status")).to_have_text("completed", timeout=30_000)
    expect(timeline.locator(".step-model")).to_have_count(2)
    expect(timeline.locator(".step-running")).to_have_count(0)
    for took in timeline.locator(".step-took").all_inner_texts():
        assert re.fullmatch(r"\d+\.\d s", took), took
    tool_took = timeline.locator(".step-tool .step-took").inner_text()
    model_took = timeline.locator(".step-model .step-took").last.inner_text()
    # The second request streams the answer in chunks 0.3 s apart: it took a while.
    assert float(model_took.split()[0]) >= 0.5, model_took
    assert float(tool_took.split()[0]) >= 0.0
    assert elapsed_seconds(page) >= float(model_took.split()[0])
    expect(page.locator("#answer")).to_contain_text("web_fetch")
    browser_page.shot("timeline-ended")


# -- 4. the delivery log ---------------------------------------------------------------------


def test_the_delivery_log_shows_the_request_and_the_response(browser_page: BrowserPage) -> None:
    page = browser_page.page
    browser_page.sign_in()
    worker_id = new_worker(browser_page, "Logged Lab")
    with Receiver() as receiver, api(browser_page) as client:
        client.put(f"/api/workers/{worker_id}/webhook", json={"url": receiver.url("/hook")})
        token = client.get(f"/api/workers/{worker_id}/webhook").json()["token"]
        started = run_task(browser_page, worker_id, "fetch the red ball")
        (delivered,) = receiver.wait_for(1)

        def logged() -> bool:
            logs = client.get(f"/api/workers/{worker_id}/webhook/executions").json()["logs"]
            return bool(logs) and logs[0]["responseStatus"] == 200

        browser_page.server.wait_for("the delivery logged", logged, timeout=30)
    page.goto(f"/workers/{worker_id}#panel-webhook")
    log = page.locator("#webhook-log")
    expect(log.locator("tr.execution")).to_have_count(1)
    log.get_by_text("Request and response").click()
    detail = log.locator(".execution-detail details")
    headers = detail.locator("pre.headers")
    expect(headers).to_contain_text("Content-Type: application/json")
    expect(headers).to_contain_text(f"webhook-id: {delivered.headers['webhook-id']}")
    expect(headers).to_contain_text("X-Handinger-Token: whk_••••")
    expect(headers).to_contain_text("webhook-signature: v1,")
    # The body is what the receiver got, byte for byte (shown indented).
    sent = json.loads(delivered.body)
    shown = json.loads(detail.locator("pre.request-body").inner_text())
    assert shown == sent
    assert started["taskId"] in detail.locator("pre.request-body").inner_text()
    expect(detail.locator("pre.response-excerpt")).to_have_text("thanks")
    # The token is a secret: nowhere in the log.
    assert token not in log.inner_html()
    assert token[4:12] not in log.inner_html()
    browser_page.shot("delivery-detail")


# -- 5. search and filters -------------------------------------------------------------------


def test_search_and_filter_the_workers_and_the_tasks(browser_page: BrowserPage) -> None:
    page = browser_page.page
    browser_page.sign_in()
    stamp = str(int(time.time() * 1000))
    alpha = new_worker(browser_page, f"Alpha Setter {stamp}", summary="finds ducks")
    new_worker(browser_page, f"Bravo Collie {stamp}", summary="herds sheep", visibility="private")
    page.goto("/workers")
    filters = page.locator("#worker-filters")
    filters.get_by_label("Search workers").fill(f"collie {stamp}")
    filters.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*/workers\?q=collie.*"))
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(f"Bravo Collie {stamp}")
    expect(page.locator("#list-title")).to_contain_text("1 worker found")
    expect(filters.get_by_label("Search workers")).to_have_value(f"collie {stamp}")
    # The summary is searched too, and visibility filters.
    page.goto("/workers?q=DUCKS")
    expect(page.locator("table.list")).to_contain_text(f"Alpha Setter {stamp}")
    page.goto(f"/workers?q={stamp}&visibility=private")
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    expect(page.locator("table.list")).to_contain_text("Bravo Collie")
    page.goto("/workers?q=no-such-worker-anywhere")
    expect(page.locator("#no-match")).to_be_visible()
    browser_page.shot("workers-search")

    run_task(browser_page, alpha, "sniff the hedge for rabbits")
    run_task(browser_page, alpha, "count the ducks on the pond")
    page.goto(f"/workers/{alpha}#history")
    history = page.locator("#history")
    expect(history.locator("tbody tr")).to_have_count(2)
    task_filters = page.locator("#task-filters")
    task_filters.get_by_label("Search task titles").fill("DUCKS")
    task_filters.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*\?q=DUCKS.*#history$"))
    expect(page.locator("#tabs a.current")).to_have_text("Tasks")
    expect(history.locator("tbody tr")).to_have_count(1)
    expect(history).to_contain_text("count the ducks")
    page.locator("#task-filters").get_by_label("Status").select_option("error")
    page.locator("#task-filters").get_by_role("button", name="Filter").click()
    expect(page.locator("#history")).to_contain_text("No task matches these filters.")
    page.goto(f"/workers/{alpha}?trigger=api&status=completed#history")
    expect(page.locator("#history tbody tr")).to_have_count(2)
    page.goto(f"/workers/{alpha}?trigger=email#history")
    expect(page.locator("#history")).to_contain_text("No task matches")
    page.goto(f"/workers/{alpha}?status=bogus#history")  # forgiving: no filter
    expect(page.locator("#history tbody tr")).to_have_count(2)
    browser_page.shot("tasks-filtered")


# -- 7. one 404 page -------------------------------------------------------------------------


def test_a_404_keeps_the_layout_and_the_navigation(browser_page: BrowserPage) -> None:
    page = browser_page.page
    browser_page.sign_in()
    for path in ("/no-such-page", "/workers/wrk_doesnotexist", "/tasks/tsk_nope/extra"):
        response = page.goto(path)
        assert response is not None
        assert response.status == 404, path
        expect(page.locator("h1")).to_have_text("Not found")
        expect(page.locator("header.top nav").get_by_role("link", name="Workers")).to_be_visible()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    browser_page.ignore_errors()  # the 404s themselves
    browser_page.shot("not-found-page")
    # The API keeps its JSON errors.
    r = httpx.get(browser_page.server.base_url + "/api/no-such", headers={"Accept": "text/html"})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "No such route."
