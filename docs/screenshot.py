"""Make the README's pictures of the dashboard from a running server.

    python docs/screenshot.py [--chromium /usr/bin/chromium] [--out docs]

It starts `kennel serve` (offline model, slowed a little so a turn can be watched, a fresh
SQLite database in a temporary folder), makes a worker through the API, runs two tasks on it,
points its webhook at a receiver of its own, signs in to the dashboard with Playwright in
Chromium and saves, in `--out`:

- `worker-page.png`: the worker's page, its latest answer and conversation;
- `worker-running.png`: a turn running: its clock, model requests, tool call and the source found;
- `deliveries.png`: the Webhook tab, a delivery's request (token masked) and response opened;
- `confirm.png`: the confirm step of `Regenerate token`;
- `phone.png`: the worker page on a 390 px wide screen.

Needs the test extras (`pip install -e '.[test]'`) and a Chromium (`apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_SCHEMA = {
    "type": "object",
    "properties": {
        "headline": {"type": "string"},
        "changes": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["headline", "changes"],
}


_PAGE = (
    b"<!doctype html><title>Kennel 0.2 release notes</title>"
    b"<h1>Kennel 0.2</h1><p>Tabs on the worker page, a live timeline, confirm steps.</p>"
)


class _Local(BaseHTTPRequestHandler):
    """A release-notes page for web_fetch (GET) and a webhook receiver (POST)."""

    def do_GET(self) -> None:
        self._answer(200, "text/html; charset=utf-8", _PAGE)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self._answer(200, "application/json", b'{"received": true}')

    def _answer(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def _local_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Local)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"kennel serve exited with {server.returncode}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit("kennel serve did not become healthy")


def _wait_idle(api: httpx.Client, worker_id: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = api.get(f"/api/workers/{worker_id}").json()
        if not state["running"] and state["status"] == "completed":
            return
        time.sleep(0.3)
    sys.exit("the worker's turn did not end")


def _make_worker(api: httpx.Client, site: str) -> str:
    worker = api.post(
        "/api/workers",
        json={
            "title": "Release Watcher",
            "summary": "Sums up what changed in a release",
            "instructions": "Read the release notes you are given and list what changed.",
            "outputSchema": _SCHEMA,
        },
    )
    worker.raise_for_status()
    worker_id: str = worker.json()["id"]
    api.put(f"/api/workers/{worker_id}/webhook", json={"url": f"{site}/hooks/kennel"})
    api.post(
        f"/api/workers/{worker_id}/schedules",
        json={"input": "Check for a new release", "when": {"type": "cron", "cron": "0 9 * * 1"}},
    ).raise_for_status()
    for text in (
        "What changed in Kennel 0.1? Save the summary to notes.md",
        "Summarise the release notes in notes.md for the team",
    ):
        api.post("/api/tasks", json={"input": text, "workerId": worker_id}).raise_for_status()
        _wait_idle(api, worker_id)
    # The delivery of the last turn, logged once the receiver answered.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        logs = api.get(f"/api/workers/{worker_id}/webhook/executions").json()["logs"]
        if len(logs) >= 2:
            break
        time.sleep(0.3)
    return worker_id


def _shoot(page: Page, base_url: str, worker_id: str, site: str, out: Path) -> None:
    page.goto(f"{base_url}/workers/{worker_id}")
    page.locator("#conversation summary").click()
    # The first screenful only: small enough to keep in the repository.
    page.screenshot(path=str(out / "worker-page.png"))

    page.get_by_label("Input", exact=True).fill(
        f"Read {site}/notes and sum up for the team what changed in Kennel 0.2, in a few lines"
    )
    page.locator("#run").get_by_role("button", name="Run").click()
    expect(page.locator("#live-sources")).to_contain_text("Kennel 0.2 release notes")
    page.wait_for_timeout(1200)  # a few words of the answer, and the clock moved on
    page.screenshot(path=str(out / "worker-running.png"))
    expect(page.locator("#live-status")).to_have_text("completed", timeout=60_000)

    page.goto(f"{base_url}/workers/{worker_id}#panel-webhook")
    page.reload()
    page.locator("#webhook-log details summary").first.click()
    page.locator("#webhook-log").scroll_into_view_if_needed()
    page.screenshot(path=str(out / "deliveries.png"))

    page.locator("#panel-webhook").get_by_role("button", name="Regenerate token").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.screenshot(path=str(out / "confirm.png"))
    page.locator("#confirm-cancel").click()

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base_url}/workers/{worker_id}#history")
    page.reload()
    page.screenshot(path=str(out / "phone.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="the folder")
    options = parser.parse_args()
    key = "knl_" + secrets.token_urlsafe(32)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder, _local_site() as site:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KENNEL_")}
        env.update(
            KENNEL_DATA_DIR=folder,
            KENNEL_BOOTSTRAP_API_KEY=key,
            KENNEL_PUBLIC_URL=base_url,
            KENNEL_MODEL="offline",
            KENNEL_OFFLINE_MODEL_DELAY_SECONDS="0.15",
            KENNEL_ALLOW_PRIVATE_FETCH="true",
            KENNEL_ALLOW_PRIVATE_WEBHOOKS="true",
            KENNEL_SMTP_PORT=str(_free_port()),  # 2525 may be another server's
            PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
        )
        command = [sys.executable, "-m", "kennel", "serve", "--port", str(port)]
        server = subprocess.Popen(command, env=env, cwd=folder, stderr=subprocess.DEVNULL)
        try:
            _wait_healthy(base_url, server)
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base_url, headers=headers, timeout=60) as api:
                worker_id = _make_worker(api, site)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=options.chromium, args=_ARGS)
                page = browser.new_page(viewport={"width": 1100, "height": 1000})
                page.goto(f"{base_url}/workers/{worker_id}")
                page.get_by_label("API key").fill(key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{base_url}/workers/{worker_id}")
                _shoot(page, base_url, worker_id, site, options.out)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    for name in ("worker-page", "worker-running", "deliveries", "confirm", "phone"):
        path = options.out / f"{name}.png"
        print(f"saved {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
