"""The dashboard in a real browser: Debian's Chromium driven by Playwright, one per module,
against a live `kennel serve` started once per module and backend.

Playwright's own browser download is not reachable here, so the browser is the system's
(`apt-get install chromium`), launched by path; without it these tests skip with a message.

    def test_something(browser_page: BrowserPage) -> None:
        browser_page.sign_in()                         # the server's bootstrap key
        browser_page.page.goto("/workers")
        browser_page.shot("workers")                   # a screenshot; fails on console errors
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

from tests.conftest import BACKENDS, fresh_database
from tests.e2e.conftest import LiveServer, start_live_server

__all__ = ["CHROMIUM", "BrowserPage"]

CHROMIUM = os.environ.get("KENNEL_TEST_CHROMIUM", "/usr/bin/chromium")
_CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The offline model pauses this long before each chunk of three words, so an answer visibly
# arrives in pieces.
DELAY_SECONDS = 0.3
_SRC = Path(__file__).resolve().parents[2] / "src"


def _pythonpath() -> str:
    """This checkout's sources first: the server runs in another folder, where a relative
    PYTHONPATH (`PYTHONPATH=src`) would no longer point here."""
    inherited = [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return os.pathsep.join([str(_SRC), *(p for p in inherited if p)])


@pytest.fixture(scope="module", params=BACKENDS)
def dashboard_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live server whose offline model answers slowly enough to watch."""
    workdir = tmp_path_factory.mktemp(f"kennel-dashboard-{request.param}")
    extra = {
        "KENNEL_OFFLINE_MODEL_DELAY_SECONDS": str(DELAY_SECONDS),
        # The webhook panel's test delivers to a receiver on 127.0.0.1, over plain http.
        "KENNEL_ALLOW_PRIVATE_WEBHOOKS": "true",
        # The live timeline's test has the model read a page served on 127.0.0.1.
        "KENNEL_ALLOW_PRIVATE_FETCH": "true",
        "PYTHONPATH": _pythonpath(),
    }
    with (
        fresh_database(request.param, workdir) as database_url,
        start_live_server(workdir, database_url, backend=request.param, extra_env=extra) as server,
    ):
        yield server


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=_CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class BrowserPage:
    """A page in a fresh browser context (its own cookies), and what its console said."""

    page: Page
    server: LiveServer
    shots: Path
    errors: list[str] = field(default_factory=list)

    def sign_in(self, key: str | None = None, *, start: str = "/workers") -> None:
        """Sign in through the form, starting from a page that asks for it."""
        self.page.goto(start)
        assert self.page.url.startswith(self.server.base_url + "/login"), self.page.url
        self.page.get_by_label("API key").fill(key or self.server.api_key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(lambda url: "/login" not in url)

    def shot(self, name: str) -> Path:
        """A screenshot of the whole page under the test's folder; no console errors so far."""
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert self.errors == [], f"console errors on {self.page.url}: {self.errors}"
        return path

    def ignore_errors(self) -> None:
        """Forget console errors so far (a 403 or 404 page is one, by the browser's rules)."""
        self.errors.clear()


def _console_error(errors: list[str], message: ConsoleMessage) -> None:
    if message.type == "error":
        errors.append(f"{message.text} ({message.location.get('url', '')})")


def _page_error(errors: list[str], error: Error) -> None:
    errors.append(f"uncaught: {error.message}")


@pytest.fixture
def browser_page(
    chromium: Browser, dashboard_server: LiveServer, tmp_path: Path
) -> Iterator[BrowserPage]:
    context = chromium.new_context(
        base_url=dashboard_server.base_url,
        accept_downloads=True,
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    found = BrowserPage(page, dashboard_server, tmp_path)
    page.on("console", lambda message: _console_error(found.errors, message))
    page.on("pageerror", lambda error: _page_error(found.errors, error))
    try:
        yield found
    finally:
        context.close()
