"""Mail through real server processes: a crash right after the 250, and the operator's
`kennel mail list` and `kennel mail replay`."""

from __future__ import annotations

import collections
import re
import smtplib
import threading
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LiveServer, start_live_server
from tests.e2e.test_crash_recovery import sigkill
from tests.factories.mail import many_parts
from tests.factories.polling import wait_until

pytestmark = pytest.mark.e2e


def smtp_port(server: LiveServer) -> int:
    """The listener's port, from the start-up block (the server was given a free one)."""
    deadline = time.monotonic() + 20
    stdout = server.log_path.parent / "server.stdout"
    while time.monotonic() < deadline:
        found = re.search(
            r"SMTP listener +[\d.]+:(\d+)", stdout.read_text() if stdout.exists() else ""
        )
        if found:
            return int(found.group(1))
        time.sleep(0.1)
    raise AssertionError("no SMTP listener line in the start-up block")


def mail(sender: str, to: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = make_msgid(domain="client.example")
    message.set_content("Please count the dogs.")
    from email import policy

    return message.as_bytes(policy=policy.SMTP)


def tasks_of(server: LiveServer, worker_id: str) -> list[dict[str, Any]]:
    with server.http(server.api_key) as http:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            body = http.get("/api/tasks", params={"workerId": worker_id, "page": page}).json()
            found += body["tasks"]
            if page >= body["pageCount"]:
                return found
            page += 1


def test_a_crash_right_after_the_250_loses_nothing_and_starts_nothing_twice(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = {"KENNEL_EXECUTOR_ID": "mail-crash-test", "KENNEL_TASK_WAIT_SECONDS": "0"}
    workdir = tmp_path / "server"
    count = 20
    with start_live_server(workdir, empty_database_url, extra_env=env) as first:
        key = first.api_key
        with first.http(key) as http:
            worker = http.post("/api/workers", json={"title": "Crash Inbox"}).json()
        with smtplib.SMTP("127.0.0.1", smtp_port(first), timeout=10) as client:
            for n in range(count):  # one session, as fast as it goes
                client.sendmail(
                    "admin@example.com",
                    [worker["email"]],
                    mail("admin@example.com", worker["email"], f"n{n}"),
                )
        sigkill(first)  # at once: some intakes have not run yet
    (workdir / "server.log").rename(workdir / "first-server.log")
    with start_live_server(workdir, empty_database_url, extra_env=env) as second:
        second.api_key = key
        wait_until("every message's task", lambda: len(tasks_of(second, worker["id"])) >= count)
        time.sleep(1.5)  # a second task for any message would have come by now
        found = tasks_of(second, worker["id"])
    subjects = collections.Counter(t["title"] for t in found)
    assert subjects == {f"n{n}": 1 for n in range(count)}
    assert {t["triggeredBy"] for t in found} == {"email"}


def test_an_operator_lists_and_replays_a_refused_message(
    empty_database_url: str, tmp_path: Path
) -> None:
    with start_live_server(tmp_path / "server", empty_database_url) as server:
        with server.http(server.api_key) as http:
            worker = http.post("/api/workers", json={"title": "Replay Inbox"}).json()
            # The envelope sender is the admin (allowed), the From: a stranger: refused at intake.
            with smtplib.SMTP("127.0.0.1", smtp_port(server), timeout=10) as client:
                client.sendmail(
                    "admin@example.com",
                    [worker["email"]],
                    mail("carol@partner.example", worker["email"], "From a partner"),
                )

            def refused() -> list[str]:
                lines = server.cli("mail", "list", "--failed").stdout.splitlines()
                return [line for line in lines[1:] if "\trefused\t" in line]

            (line,) = wait_until("the refusal", refused)
            assert "carol@partner.example may not write" in line or "not allowed" in line
            message_id = line.split("\t")[0]
            assert tasks_of(server, worker["id"]) == []
            r = http.put(
                f"/api/workers/{worker['id']}/email/allowed-senders",
                json={"senders": ["@partner.example"]},
            )
            assert r.status_code == 200, r.text
            replayed = server.cli("mail", "replay", message_id)
            assert message_id in replayed.stdout
            (task,) = wait_until("the replayed task", lambda: tasks_of(server, worker["id"]))
            assert task["metadata"]["from"] == "carol@partner.example"
            listed = server.cli("mail", "list").stdout
            assert f"{message_id}\t" in listed
            assert "\tstarted\t" in listed


def test_a_hostile_message_stalls_nothing(live_server: LiveServer) -> None:
    """Thousands of tiny MIME parts cost the email package seconds: refused at DATA; one
    just under the bounds is read off the loop. /healthz answers throughout."""
    server = live_server
    with server.http(server.api_key) as http:
        worker = http.post("/api/workers", json={"title": "Hostile Inbox"}).json()
    gaps: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            last = time.monotonic()
            while not stop.is_set():
                assert client.get("/healthz").status_code == 200
                now = time.monotonic()
                gaps.append(now - last)
                last = now
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        admin = "admin@example.com"
        with smtplib.SMTP("127.0.0.1", smtp_port(server), timeout=60) as client:
            client.ehlo("client.example")
            client.mail(admin)
            client.rcpt(worker["email"])
            code, text = client.data(many_parts(5_000, sender=admin, to=worker["email"]))
            assert (code, text) == (
                552,
                b"5.3.4 Message too complex to read: 5001 MIME parts, at most 500",
            )
            client.rset()
            client.sendmail(
                admin, [worker["email"]], many_parts(499, sender=admin, to=worker["email"])
            )
        (task,) = wait_until("the task of the message", lambda: tasks_of(server, worker["id"]))
        assert task["triggeredBy"] == "email"
    finally:
        stop.set()
        prober.join()
    assert len(gaps) > 10
    assert max(gaps) < 1.0
