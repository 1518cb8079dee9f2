"""Make `docs/worker-page.png`, the README's picture of a worker's page, from a running server.

    python docs/screenshot.py [--chromium /usr/bin/chromium] [--out docs/worker-page.png]

It starts `kennel serve` (offline model, a fresh SQLite database in a temporary folder), makes
a worker through the API, runs two tasks on it, signs in to the dashboard with Playwright in
Chromium and saves the page. Needs the test extras (`pip install -e '.[test]'`) and a Chromium
(`apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

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


def _make_worker(api: httpx.Client) -> str:
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
    for text in (
        "What changed in Kennel 0.1? Save the summary to notes.md",
        "Summarise the release notes in notes.md for the team",
    ):
        api.post("/api/tasks", json={"input": text, "workerId": worker_id}).raise_for_status()
    return worker_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "worker-page.png")
    options = parser.parse_args()
    key = "knl_" + secrets.token_urlsafe(32)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KENNEL_")}
        env.update(
            KENNEL_DATA_DIR=folder,
            KENNEL_BOOTSTRAP_API_KEY=key,
            KENNEL_PUBLIC_URL=base_url,
            KENNEL_MODEL="offline",
            PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
        )
        command = [sys.executable, "-m", "kennel", "serve", "--port", str(port)]
        server = subprocess.Popen(command, env=env, cwd=folder, stderr=subprocess.DEVNULL)
        try:
            _wait_healthy(base_url, server)
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base_url, headers=headers, timeout=60) as api:
                worker_id = _make_worker(api)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=options.chromium, args=_ARGS)
                page = browser.new_page(viewport={"width": 1100, "height": 1000})
                page.goto(f"{base_url}/workers/{worker_id}")
                page.get_by_label("API key").fill(key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{base_url}/workers/{worker_id}")
                page.locator("#conversation summary").click()
                # The first screenful only: small enough to keep in the repository.
                page.screenshot(path=str(options.out))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"saved {options.out} ({options.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
