"""The Python examples of docs/api.md, run as written against a live server.

A block preceded by `<!-- tested: live -->` runs, in order, in one namespace, with the
server's address and key in place of the README's; `<!-- tested: webhook-verify -->` is the
receiver's check, run against signatures Kennel makes.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from handinger import Handinger

from kennel.webhooks.signing import webhook_headers
from tests.e2e.conftest import LiveServer

DOC = Path(__file__).parents[2] / "docs" / "api.md"
_BLOCK = re.compile(r"<!-- tested: ([a-z-]+) -->\n```python\n(.*?)\n```", re.S)
_README_SERVER = '"http://127.0.0.1:8000", "knl_local_dev_key"'


def blocks(kind: str) -> list[str]:
    found = [code for tag, code in _BLOCK.findall(DOC.read_text()) if tag == kind]
    assert found, f"no `{kind}` example in {DOC}"
    return found


def test_the_sdk_examples_do_what_the_docs_say(live_server: LiveServer) -> None:
    code = "\n\n".join(blocks("live"))
    assert _README_SERVER in code
    code = code.replace(_README_SERVER, f"{live_server.base_url!r}, {live_server.api_key!r}")
    namespace: dict[str, Any] = {}
    try:
        exec(compile(code, str(DOC), "exec"), namespace)  # our own documentation
    finally:
        # The example's client, closed here: dropped open, its pooled connection was found
        # by the garbage collector in a later test, which then failed on the ResourceWarning.
        for value in list(namespace.values()):
            if isinstance(value, Handinger | httpx.Client):
                value.close()
    ns = namespace
    worker_id = ns["worker"].id

    # A stream read as it arrives, and its task continued.
    assert ns["events"][0]["type"] == "start"
    assert ns["events"][-1]["type"] == "finish"
    assert ns["text"]
    assert ns["again"].status == "completed"
    assert ns["again"].metadata["taskId"] == ns["task_id"]

    # The uploaded file reached the workspace and reads back.
    assert ns["answer"]["status"] == "completed"
    assert isinstance(ns["notes"], httpx.Response)
    assert ns["notes"].text == "The kennel has four dogs."

    # Lists: both tasks of the worker, the worker itself, both turns of the streamed task.
    assert ns["tasks"]["totalCount"] == 2
    assert worker_id in {w["id"] for w in ns["workers"]["workers"]}
    assert [t["seq"] for t in ns["turns"]["items"]] == [1, 2]

    # Kennel's extensions took effect.
    assert len(ns["upcoming"]) == 5
    with live_server.http(live_server.api_key) as http:
        schedule = http.get(f"/api/workers/{worker_id}/schedules/{ns['schedule'].id}").json()
        senders = http.get(f"/api/workers/{worker_id}/email/allowed-senders").json()
    assert schedule["paused"] is True
    assert senders == {"senders": ["@example.com"]}


@pytest.fixture
def verify() -> Any:
    (code,) = blocks("webhook-verify")
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # our own documentation
    return namespace["verify"]


def test_the_stdlib_verification_accepts_kennels_signatures_only(verify: Any) -> None:
    body = b'{"type":"task.completed"}'
    headers = webhook_headers("msg_1", body, ["whk_new"])
    assert verify("whk_new", headers, body)
    assert not verify("whk_other", headers, body)
    assert not verify("whk_new", headers, body + b" ")
    # During a rotation a delivery carries both signatures; each token verifies it.
    rotated = webhook_headers("msg_2", body, ["whk_new", "whk_old"])
    assert verify("whk_new", rotated, body)
    assert verify("whk_old", rotated, body)
    # An old delivery replayed is refused.
    stale = webhook_headers("msg_3", body, ["whk_new"], timestamp=int(time.time()) - 3600)
    assert not verify("whk_new", stale, body)
    # Header names are not case-sensitive in HTTP.
    assert verify("whk_new", {k.title(): v for k, v in headers.items()}, body)
