"""Workers' inboxes end to end in the real app: real SMTP in (smtplib to the app's listener),
real SMTP out (a relay sink started here), on both backends."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import subprocess
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI

from kennel.agents.offline_model import OfflineModel
from kennel.core import wakeup
from kennel.mail import senders
from kennel.mail import workflows as intake
from tests.e2e.conftest import free_port
from tests.factories import Member, make_member
from tests.factories.polling import eventually
from tests.factories.tasks import tasks_of
from tests.factories.workers import new_worker


class Sink:
    """An SMTP relay on 127.0.0.1 that keeps what it is handed; it may refuse the first ones."""

    def __init__(self, refuse_first: int = 0) -> None:
        self.received: list[EmailMessage] = []
        self.refuse_left = refuse_first

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_left > 0:
            self.refuse_left -= 1
            return "451 4.3.0 try again later"
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        return "250 OK"


class _Relay:
    """The SMTP relay of this test process, up for the whole session: an answer a test did not
    wait for reaches a live relay later instead of a stopped one (whose half-open connection
    would warn in whichever test came next). Each test gets a sink of its own."""

    def __init__(self) -> None:
        self.sink = Sink()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return await self.sink.handle_DATA(server, session, envelope)


@pytest.fixture(scope="session")
def _session_relay() -> Iterator[tuple[_Relay, int]]:
    router = _Relay()
    controller = Controller(router, hostname="127.0.0.1", port=free_port())  # not 0: it dials it
    controller.start()
    try:
        yield router, controller.port
    finally:
        controller.stop()


@pytest.fixture
def relay(_session_relay: tuple[_Relay, int], reconfigure: Callable[..., None]) -> Sink:
    router, port = _session_relay
    router.sink = Sink()
    reconfigure(smtp_relay=f"127.0.0.1:{port}")
    return router.sink


def listener_port(app: FastAPI) -> int:
    return int(app.state.mail_listener.address[1])


def compose(
    sender: str,
    to: str,
    subject: str = "Count the dogs",
    body: str = "How many dogs are in the kennel?",
    **headers: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="client.example")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


async def send(app: FastAPI, message: EmailMessage | bytes, *, mail_from: str, to: str) -> Any:
    def run() -> Any:
        with smtplib.SMTP("127.0.0.1", listener_port(app), timeout=10) as client:
            raw = message if isinstance(message, bytes) else message.as_bytes(policy=policy.SMTP)
            return client.sendmail(mail_from, [to], raw)

    return await asyncio.to_thread(run)


async def inbox_of(client: httpx.AsyncClient, member: Member, **body: Any) -> tuple[str, str]:
    worker = await new_worker(client, member, **body)
    return worker["id"], worker["email"]


class TestConversation:
    async def test_a_members_mail_starts_a_task_and_gets_a_threaded_answer(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, relay: Sink
    ) -> None:
        worker_id, address = await inbox_of(client, member, title="Mail Dog")
        first = compose(member.email, address)
        before = time.monotonic()
        await send(app, first, mail_from=member.email, to=address)
        # While it came in, no queue was polled (`wakeup.defer`: a burst is taken in first).
        assert wakeup._deferred > before
        (answer,) = await eventually(lambda: answers_to(relay, first))
        assert answer["To"] == member.email
        assert address in answer["From"]
        assert answer["Subject"] == "Re: Count the dogs"
        assert answer["In-Reply-To"] == first["Message-ID"]
        assert first["Message-ID"] in answer["References"]
        assert answer["Auto-Submitted"] == "auto-replied"
        assert "Done: Count the dogs" in answer.get_content()
        (task,) = await tasks_of(client, member, worker_id)
        assert task["triggeredBy"] == "email"
        assert task["metadata"]["from"] == member.email
        await eventually(lambda: _reply_sent(client, member, task["id"]))

        # A reply in the thread is a follow-up turn of the same task.
        second = compose(
            member.email,
            address,
            subject="Re: Count the dogs",
            body="And the cats?\n\nOn Mon, Kennel wrote:\n> Done: Count the dogs",
            In_Reply_To=answer["Message-ID"],
            References=f"{first['Message-ID']} {answer['Message-ID']}",
        )
        await send(app, second, mail_from=member.email, to=address)
        (again,) = await eventually(lambda: answers_to(relay, second))
        (task,) = await tasks_of(client, member, worker_id)
        found = (await client.get(f"/api/tasks/{task['id']}", headers=member.headers)).json()
        assert [t["input"] for t in found["turns"]] == [
            "Count the dogs\n\nHow many dogs are in the kennel?",
            "Re: Count the dogs\n\nAnd the cats?",  # the quoted history trimmed
        ]
        assert answer["Message-ID"] in again["References"]

    async def test_replies_waiting_for_their_tasks_hold_up_no_other_mail(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A reply that arrives while its task runs a turn waits for that turn to end, then is
        the task's next turn; waiting, it takes none of the intake queue's four slots."""
        monkeypatch.setattr(intake, "_BUSY_WAIT_SECONDS", 0.5)
        reconfigure(model=OfflineModel(delay_seconds=2))  # first turns: 2 s a request
        worker_id, address = await inbox_of(client, member, title="Busy Dog")
        firsts = [compose(member.email, address, subject=f"Job {n}") for n in range(4)]
        for message in firsts:
            await send(app, message, mail_from=member.email, to=address)
        await eventually(lambda: _has_tasks(client, member, worker_id, 4))
        for n, message in enumerate(firsts):  # as many waiting replies as the queue has slots
            reply = compose(
                member.email,
                address,
                subject=f"Re: Job {n}",
                body="And the cats?",
                In_Reply_To=message["Message-ID"],
                References=message["Message-ID"],
            )
            await send(app, reply, mail_from=member.email, to=address)
        await send(
            app, compose(member.email, address, subject="Fresh"), mail_from=member.email, to=address
        )
        await eventually(lambda: _has_tasks(client, member, worker_id, 5), timeout=4)
        busy = [t for t in await tasks_of(client, member, worker_id) if t["title"] != "Fresh"]
        assert [t["status"] for t in busy] == ["running"] * 4  # the replies were still waiting
        reconfigure(model=OfflineModel())  # the replies' own turns need not be slow

        async def replies_are_second_turns() -> bool:
            for task in busy:
                found = await client.get(f"/api/tasks/{task['id']}", headers=member.headers)
                subjects = [t["input"].split("\n\n")[0] for t in found.json()["turns"]]
                if subjects != [task["title"], f"Re: {task['title']}"]:
                    return False
            return True

        await eventually(replies_are_second_turns, timeout=40)

    async def test_attachments_land_in_the_workspace_and_dots_survive(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, relay: Sink
    ) -> None:
        worker_id, address = await inbox_of(client, member)
        message = compose(member.email, address, body="Line one\n.hidden dot line\n..two dots")
        message.add_attachment(
            b"a,b\n1,2\n", maintype="text", subtype="csv", filename="../da ta.csv"
        )
        await send(app, message, mail_from=member.email, to=address)

        async def completed() -> list[dict]:
            found = await tasks_of(client, member, worker_id)
            return [t for t in found if t["status"] == "completed"]

        (task,) = await eventually(completed)  # its files are written before its turn starts
        turns = (await client.get(f"/api/tasks/{task['id']}/turns", headers=member.headers)).json()
        assert turns["items"][0]["input"].endswith("Line one\n.hidden dot line\n..two dots")
        (file,) = turns["items"][0]["files"]
        assert (file["filename"], file["mediaType"], file["size"]) == ("da ta.csv", "text/csv", 8)
        download = await client.get(file["url"], headers=member.headers)
        assert download.content == b"a,b\n1,2\n", download.text

    async def test_plus_addressing_reaches_the_worker_with_its_tag(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, relay: Sink
    ) -> None:
        worker_id, address = await inbox_of(client, member)
        local, domain = address.split("@")
        tagged = f"{local.upper()}+invoices@{domain}"
        await send(app, compose(member.email, tagged), mail_from=member.email, to=tagged)
        (task,) = await eventually(lambda: tasks_of(client, member, worker_id))
        assert task["metadata"]["tag"] == "invoices"


def answers_to(relay: Sink, question: EmailMessage) -> list[EmailMessage]:
    """The relay's answers to that message (other tests' late answers may arrive too)."""
    return [m for m in relay.received if m["In-Reply-To"] == question["Message-ID"]]


async def _has_tasks(client: httpx.AsyncClient, member: Member, worker_id: str, n: int) -> bool:
    return len(await tasks_of(client, member, worker_id)) >= n


async def _reply_sent(client: httpx.AsyncClient, member: Member, task_id: str) -> bool:
    task = (await client.get(f"/api/tasks/{task_id}", headers=member.headers)).json()["task"]
    return task["metadata"].get("reply", {}).get("status") == "sent"


class TestWhoMayWrite:
    async def test_an_unknown_recipient_is_550_at_rcpt(self, app: FastAPI, member: Member) -> None:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            await send(
                app,
                compose(member.email, "nobody@mail.kennel.test"),
                mail_from=member.email,
                to="nobody@mail.kennel.test",
            )
        code, text = info.value.recipients["nobody@mail.kennel.test"]
        assert (code, text[:5]) == (550, b"5.1.1")

    async def test_a_stranger_is_refused_and_an_allow_listed_one_is_not(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, relay: Sink
    ) -> None:
        worker_id, address = await inbox_of(client, member)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            await send(
                app, compose("eve@evil.test", address), mail_from="eve@evil.test", to=address
            )
        assert info.value.recipients[address][0] == 550
        r = await client.put(
            f"/api/workers/{worker_id}/email/allowed-senders",
            json={"senders": ["@Friends.example", "eve@evil.test"]},
            headers=member.headers,
        )
        assert r.json() == {"senders": ["@friends.example", "eve@evil.test"]}
        await send(
            app,
            compose("bob@friends.example", address),
            mail_from="bob@friends.example",
            to=address,
        )
        (task,) = await eventually(lambda: tasks_of(client, member, worker_id))
        assert task["metadata"]["from"] == "bob@friends.example"
        bad = await client.put(
            f"/api/workers/{worker_id}/email/allowed-senders",
            json={"senders": ["not an address"]},
            headers=member.headers,
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "senders"

    async def test_a_member_of_another_organization_is_a_stranger(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        other = await make_member(app)
        _, address = await inbox_of(client, member)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await send(app, compose(other.email, address), mail_from=other.email, to=address)

    async def test_an_auto_reply_starts_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id, address = await inbox_of(client, member)
        message = compose(member.email, address, Auto_Submitted="auto-replied")
        await send(app, message, mail_from=member.email, to=address)
        await asyncio.sleep(1.0)
        assert await tasks_of(client, member, worker_id) == []

    async def test_a_forged_from_in_upstream_mode(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        reconfigure(mail_sender_auth="upstream", mail_authserv_id="mx.kennel.test")
        worker_id, address = await inbox_of(client, member)
        domain = member.email.split("@")[1]
        ours = f"Authentication-Results: mx.kennel.test; dmarc=pass header.from={domain}\r\n"
        theirs = f"Authentication-Results: mx.evil.test; dmarc=pass header.from={domain}\r\n"
        received = (
            "Received: from client.example by mx.kennel.test; Tue, 1 Dec 2026 10:00:00 +0000\r\n"
        )
        body = compose(member.email, address).as_bytes(policy=policy.SMTP)
        for headers, starts in (
            (b"", False),  # no Authentication-Results at all
            ((theirs + received).encode(), False),  # a foreign authserv-id
            ((received + ours).encode(), False),  # ours, but below our Received: forged
            ((ours + received).encode(), True),
        ):
            before = len(await tasks_of(client, member, worker_id))
            await send(app, headers + body, mail_from="anyone@elsewhere.example", to=address)
            if starts:
                await eventually(lambda n=before: _more(client, member, worker_id, n))
            else:
                await asyncio.sleep(0.8)
                assert len(await tasks_of(client, member, worker_id)) == before, headers

    async def test_verify_mode_checks_dkim_here(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        reconfigure: Callable[..., None],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        member = await make_member(app)
        # The member's address must be at the signing domain.
        from kennel.auth.service import issue_key

        issued = await issue_key(
            app.state.runtime.db, email="ann@dkim.example", organization=member.organization
        )
        ann = Member(
            issued.key,
            issued.user_id,
            issued.organization_id,
            member.organization,
            "ann@dkim.example",
        )
        key_path = tmp_path / "dkim.pem"
        subprocess.run(
            ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", str(key_path)], check=True, capture_output=True,
        )  # fmt: skip
        public = subprocess.run(
            ["openssl", "pkey", "-in", str(key_path), "-pubout", "-outform", "DER"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        record = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
        monkeypatch.setattr(senders, "resolve_txt", {"sel._domainkey.dkim.example": record}.get)
        reconfigure(mail_sender_auth="verify")
        worker_id, address = await inbox_of(client, ann)
        body = compose("ann@dkim.example", address).as_bytes(policy=policy.SMTP)
        signed = bytes(dkim.sign(body, b"sel", b"dkim.example", key_path.read_bytes(),
                                 include_headers=[b"from", b"to", b"subject"])) + body  # fmt: skip
        tampered = signed.replace(b"How many dogs", b"How many cats")
        await send(app, tampered, mail_from="bounce@dkim.example", to=address)
        await asyncio.sleep(0.8)
        assert await tasks_of(client, ann, worker_id) == []
        await send(app, signed, mail_from="bounce@dkim.example", to=address)
        (task,) = await eventually(lambda: tasks_of(client, ann, worker_id))
        assert task["metadata"]["from"] == "ann@dkim.example"


async def _more(client: httpx.AsyncClient, member: Member, worker_id: str, before: int) -> bool:
    return len(await tasks_of(client, member, worker_id)) > before


class TestLimitsAndRelay:
    async def test_oversized_mail_is_552(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        _, address = await inbox_of(client, member)
        size = app.state.runtime.settings.mail_max_bytes
        message = compose(member.email, address, body="x" * (size + 10))
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            await send(app, message, mail_from=member.email, to=address)
        assert info.value.smtp_code == 552

    async def test_a_relay_down_at_first_still_gets_the_answer_once(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        relay: Sink,
    ) -> None:
        relay.refuse_left = 2  # two 451s, then it takes the answer (DBOS retries the send)
        worker_id, address = await inbox_of(client, member)
        question = compose(member.email, address)
        await send(app, question, mail_from=member.email, to=address)

        await eventually(lambda: answers_to(relay, question), timeout=30)
        await asyncio.sleep(1.0)
        assert len(answers_to(relay, question)) == 1
        (task,) = await tasks_of(client, member, worker_id)
        assert await _reply_sent(client, member, task["id"])
