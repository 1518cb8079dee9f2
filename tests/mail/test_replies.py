"""Building the answer, and sending it to a real aiosmtpd relay sink started here."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
import pytest_asyncio
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from kennel.mail.message import parse_message
from kennel.mail.replies import (
    OutgoingFile,
    RelayError,
    RelaySettings,
    build_reply,
    failed_turn_text,
    new_message_id,
    reply_subject,
    send,
)
from tests.mail.conftest import Certificate

WORKER = "reports@kennel.test"


def _reply(**overrides: Any) -> EmailMessage:
    options: dict[str, Any] = {
        "from_address": WORKER,
        "from_name": "Reports",
        "to": "ann@example.com",
        "subject": "Quarterly report",
        "text": "Here is the summary.",
        "mail_domain": "kennel.test",
        "in_reply_to": "<m2@example.com>",
        "references": ["<m1@example.com>", "<k1@kennel.test>"],
    }
    return build_reply(**(options | overrides)).message


class TestBuild:
    def test_threading_headers(self) -> None:
        reply = build_reply(
            from_address=WORKER,
            from_name="Reports",
            to="ann@example.com",
            subject="Re: RE: Quarterly report",
            text="Here is the summary.",
            mail_domain="kennel.test",
            in_reply_to="<m2@example.com>",
            references=["<m1@example.com>"],
        )
        message = reply.message
        assert message["From"] == "Reports <reports@kennel.test>"
        assert message["To"] == "ann@example.com"
        assert message["Subject"] == "Re: Quarterly report"
        assert message["In-Reply-To"] == "<m2@example.com>"
        assert message["References"] == "<m1@example.com> <m2@example.com>"
        assert message["Message-ID"] == reply.message_id
        assert reply.message_id.endswith("@kennel.test>")
        assert message["Auto-Submitted"] == "auto-replied"
        assert message.get_content().strip() == "Here is the summary."

    def test_kennel_reads_its_own_reply_as_automatic(self) -> None:
        assert parse_message(_reply().as_bytes()).is_automatic

    def test_a_first_message_without_id(self) -> None:
        message = _reply(in_reply_to=None, references=[])
        assert "In-Reply-To" not in message
        assert "References" not in message

    def test_long_references_keep_root_and_nearest(self) -> None:
        refs = [f"<r{i}@example.com>" for i in range(40)]
        kept = str(_reply(references=refs, in_reply_to="<last@example.com>")["References"]).split()
        assert len(kept) == 20
        assert kept[0] == "<r0@example.com>"
        assert kept[-2:] == ["<r39@example.com>", "<last@example.com>"]

    def test_attachments_within_the_limit(self) -> None:
        files = [
            OutgoingFile("a.csv", "text/csv", b"x" * 60),
            OutgoingFile("b.pdf", "application/pdf", b"y" * 60),
            OutgoingFile("c.txt", "text/plain", b"z" * 40),
        ]
        reply = build_reply(
            from_address=WORKER,
            to="ann@example.com",
            subject="s",
            text="Done.",
            mail_domain="kennel.test",
            attachments=files,
            max_attachment_bytes=100,
        )
        assert reply.omitted == ("b.pdf",)
        read = parse_message(reply.message.as_bytes())
        assert [(a.filename, a.media_type, a.content) for a in read.attachments] == [
            ("a.csv", "text/csv", b"x" * 60),
            ("c.txt", "text/plain", b"z" * 40),
        ]
        assert "Not attached, over the size limit: b.pdf" in read.text

    def test_error_variant(self) -> None:
        text = failed_turn_text("budget exceeded:\nmodel requests")
        assert "could not finish" in text
        assert "budget exceeded: model requests" in text

    @pytest.mark.parametrize(
        ("subject", "expected"),
        [
            ("hello", "Re: hello"),
            ("Re: hello", "Re: hello"),
            ("RE: re: Re[2]: hello", "Re: hello"),
            ("AW: SV: hello", "Re: hello"),
            ("Reply needed", "Re: Reply needed"),
            ("", "Re: your message"),
            ("two\r\nlines", "Re: two lines"),
        ],
    )
    def test_subject(self, subject: str, expected: str) -> None:
        assert reply_subject(subject) == expected

    def test_message_id_for_a_key_is_stable(self) -> None:
        assert new_message_id("kennel.test", "trn_01 x") == "<trn_01-x@kennel.test>"
        assert new_message_id("kennel.test") != new_message_id("kennel.test")


class TestRelaySettings:
    @pytest.mark.parametrize(
        ("address", "host", "port"),
        [
            ("smtp.example.com:587", "smtp.example.com", 587),
            ("smtp.example.com", "smtp.example.com", 25),
            ("[::1]:2525", "::1", 2525),
        ],
    )
    def test_from_address(self, address: str, host: str, port: int) -> None:
        relay = RelaySettings.from_address(address)
        assert (relay.host, relay.port) == (host, port)

    @pytest.mark.parametrize("address", ["", ":25", "host:port", "::1:25"])
    def test_bad_address(self, address: str) -> None:
        with pytest.raises(ValueError, match="relay"):
            RelaySettings.from_address(address)

    def test_tls_or_starttls(self) -> None:
        with pytest.raises(ValueError, match="not both"):
            RelaySettings("relay", starttls=True, tls=True)

    def test_password_is_not_shown(self) -> None:
        assert "hunter2" not in repr(RelaySettings("relay", username="u", password="hunter2"))


@dataclass
class Sink:
    """A relay that keeps what it is given, or refuses it."""

    port: int = 0
    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    refuse: str | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.received.append((envelope.mail_from or "", list(envelope.rcpt_tos), content))
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"secret", handled=False)


async def _start_sink(sink: Sink, tls: ssl.SSLContext | None = None) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="relay.test", authenticator=sink.authenticate,
                     auth_require_tls=False, tls_context=tls, loop=loop),
        "127.0.0.1",
        0,
    )  # fmt: skip
    sink.port = server.sockets[0].getsockname()[1]
    return server


@pytest_asyncio.fixture
async def sink() -> AsyncIterator[Sink]:
    sink = Sink()
    server = await _start_sink(sink)
    yield sink
    server.close()
    await server.wait_closed()


class TestSend:
    async def test_the_relay_receives_the_reply(self, sink: Sink) -> None:
        reply = _reply()
        await send(reply, RelaySettings("127.0.0.1", sink.port))
        [(sender, recipients, raw)] = sink.received
        assert (sender, recipients) == (WORKER, ["ann@example.com"])
        got = BytesParser(policy=policy.default).parsebytes(raw)
        assert got["Message-ID"] == reply["Message-ID"]
        assert got["In-Reply-To"] == "<m2@example.com>"

    async def test_login(self, sink: Sink) -> None:
        relay = RelaySettings("127.0.0.1", sink.port, username="kennel", password="secret")
        await send(_reply(), relay)
        assert sink.logins == [(b"kennel", b"secret")]
        assert len(sink.received) == 1

    async def test_wrong_password(self, sink: Sink) -> None:
        relay = RelaySettings("127.0.0.1", sink.port, username="kennel", password="wrong")
        with pytest.raises(RelayError, match="535") as failed:
            await send(_reply(), relay)
        assert not failed.value.temporary

    @pytest.mark.parametrize(("answer", "temporary"), [("450 4.2.0 busy", True),
                                                       ("550 5.1.1 unknown", False)])  # fmt: skip
    async def test_refused(self, sink: Sink, answer: str, temporary: bool) -> None:
        sink.refuse = answer
        with pytest.raises(RelayError) as failed:
            await send(_reply(), RelaySettings("127.0.0.1", sink.port))
        assert failed.value.temporary is temporary

    async def test_the_relay_is_down(self) -> None:
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(RelayError, match="could not be reached") as failed:
            await send(_reply(), RelaySettings("127.0.0.1", port, timeout=5))
        assert failed.value.temporary

    async def test_starttls_with_a_private_ca(self, certificate: Certificate) -> None:
        sink = Sink()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(certificate.cert, certificate.key)
        server = await _start_sink(sink, tls)
        try:
            relay = RelaySettings(
                "127.0.0.1", sink.port, starttls=True, ca_file=str(certificate.cert)
            )
            await send(_reply(), relay)
        finally:
            server.close()
            await server.wait_closed()
        assert len(sink.received) == 1
