"""The listener over real SMTP on 127.0.0.1: what it accepts, what it refuses, what it stores."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from kennel.mail.listener import MAX_RECIPIENTS, SmtpListener, reachable_from_other_hosts
from tests.factories.mail import many_parts, nested
from tests.mail.conftest import (
    MAX_BYTES,
    WORKER,
    Certificate,
    Inbox,
    RawClient,
    Running,
    start_listener,
)

MESSAGE = (
    b"From: Ann <ann@example.com>\r\n"
    b"To: worker@kennel.test\r\n"
    b"Subject: hello\r\n"
    b"\r\n"
    b"Line one\r\n"
    b"  indented, trailing space \r\n"
    b"\r\n"
    b"\xc3\xa9t\xc3\xa9 in 8 bits\r\n"
)


def _handshake(client: smtplib.SMTP) -> None:
    client.ehlo("client.example.com")
    client.mail("ann@example.com")


class TestAccepted:
    async def test_the_message_reaches_store_byte_exact(self, running: Running) -> None:
        def talk(client: smtplib.SMTP) -> tuple[int, bytes]:
            _handshake(client)
            client.rcpt(WORKER)
            return client.data(MESSAGE)

        code, text = await running.smtp(talk)
        assert (code, text) == (250, b"2.0.0 OK queued as msg1")
        assert running.inbox.stored == [("ann@example.com", [WORKER], MESSAGE, "127.0.0.1")]

    async def test_dot_stuffing_is_undone(self, running: Running) -> None:
        body = b"Subject: dots\r\n\r\n.hidden\r\n..two\r\n.\r\nend.\r\n.\r\n"

        def talk(client: smtplib.SMTP) -> None:
            client.sendmail("ann@example.com", [WORKER], body)  # smtplib stuffs the dots

        await running.smtp(talk)
        assert running.inbox.stored[0][2] == body

    async def test_recipients_compare_case_insensitively(self, running: Running) -> None:
        def talk(client: smtplib.SMTP) -> tuple[int, bytes]:
            _handshake(client)
            return client.rcpt("Worker@KENNEL.test")

        assert (await running.smtp(talk))[0] == 250
        assert running.inbox.asked == [(WORKER, "ann@example.com")]

    async def test_the_null_sender_is_given_as_empty(self, running: Running) -> None:
        def talk(client: smtplib.SMTP) -> None:
            client.sendmail("<>", [WORKER], MESSAGE)

        await running.smtp(talk)
        assert running.inbox.stored[0][0] == ""

    async def test_size_is_announced(self, running: Running) -> None:
        def talk(client: smtplib.SMTP) -> str | None:
            client.ehlo("client.example.com")
            return client.esmtp_features.get("size")

        assert await running.smtp(talk) == str(MAX_BYTES)


class TestRefused:
    async def test_unknown_recipient_550_at_rcpt(self, running: Running) -> None:
        def talk(client: smtplib.SMTP) -> tuple[int, bytes]:
            _handshake(client)
            return client.rcpt("nobody@kennel.test")

        assert await running.smtp(talk) == (550, b"5.1.1 No such mailbox")

    async def test_refused_sender_550_at_rcpt(self, running: Running) -> None:
        running.inbox.refused_senders.add("ann@example.com")

        def talk(client: smtplib.SMTP) -> tuple[int, bytes]:
            _handshake(client)
            return client.rcpt(WORKER)

        code, text = await running.smtp(talk)
        assert (code, text[:5]) == (550, b"5.7.1")

    async def test_the_21st_recipient(self, running: Running) -> None:
        running.inbox.known |= {f"w{i}@kennel.test" for i in range(MAX_RECIPIENTS + 1)}

        def talk(client: smtplib.SMTP) -> list[int]:
            _handshake(client)
            return [client.rcpt(f"w{i}@kennel.test")[0] for i in range(MAX_RECIPIENTS + 1)]

        assert await running.smtp(talk) == [250] * MAX_RECIPIENTS + [452]

    async def test_oversize_by_size_parameter_552(self, running: Running) -> None:
        def talk(client: smtplib.SMTP) -> tuple[int, bytes]:
            client.ehlo("client.example.com")
            return client.mail("ann@example.com", [f"SIZE={MAX_BYTES + 1}"])

        assert (await running.smtp(talk))[0] == 552

    async def test_oversize_by_sending_too_much_552(self, running: Running) -> None:
        big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * (MAX_BYTES // 1000 + 1)

        def talk(client: smtplib.SMTP) -> int:
            _handshake(client)  # no SIZE= given: the limit is found while reading
            client.rcpt(WORKER)
            return client.data(big)[0]

        assert await running.smtp(talk) == 552
        assert running.inbox.stored == []

    @pytest.mark.parametrize(
        ("raw", "why"),
        [
            (many_parts(600), b"601 MIME parts, at most 500"),
            (nested(200), b"200 multipart containers"),
        ],
    )
    async def test_too_much_mime_structure_is_552_before_storing(
        self, running: Running, raw: bytes, why: bytes
    ) -> None:
        def talk(client: smtplib.SMTP) -> tuple[int, bytes]:
            _handshake(client)
            client.rcpt(WORKER)
            return client.data(raw)

        code, text = await running.smtp(talk)
        assert code == 552
        assert why in text
        assert running.inbox.stored == []

    async def test_store_failure_is_temporary(self) -> None:
        inbox = Inbox(store_fails=True)
        listener = await start_listener(inbox)
        try:

            def talk(client: smtplib.SMTP) -> int:
                _handshake(client)
                client.rcpt(WORKER)
                return client.data(MESSAGE)[0]

            assert await Running(inbox, listener).smtp(talk) == 451
        finally:
            await listener.stop()


SMUGGLED = (
    b"MAIL FROM:<boss@example.com>\r\n"
    b"RCPT TO:<worker@kennel.test>\r\n"
    b"DATA\r\n"
    b"Subject: smuggled\r\n\r\nwire the money\r\n"
)


class TestLineEndings:
    async def _open_data(self, running: Running) -> RawClient:
        client = await running.raw()
        assert (await client.command(b"EHLO client.example.com\r\n")).startswith(b"250")
        assert (await client.command(b"MAIL FROM:<ann@example.com>\r\n")).startswith(b"250")
        assert (await client.command(b"RCPT TO:<worker@kennel.test>\r\n")).startswith(b"250")
        assert (await client.command(b"DATA\r\n")).startswith(b"354")
        return client

    @pytest.mark.parametrize(
        "end", [b"\n.\n", b"\r.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"], ids=repr
    )
    async def test_smuggling_variant_is_refused(self, running: Running, end: bytes) -> None:
        client = await self._open_data(running)
        await client.send(b"Subject: one\r\n\r\nfirst" + end + SMUGGLED + b".\r\n")
        assert (await client.reply()).startswith(b"550 5.5.2")
        # The connection is still in step: a clean message after the refused one is taken.
        assert (await client.command(b"MAIL FROM:<ann@example.com>\r\n")).startswith(b"250")
        assert (await client.command(b"RCPT TO:<worker@kennel.test>\r\n")).startswith(b"250")
        assert (await client.command(b"DATA\r\n")).startswith(b"354")
        assert (await client.command(b"Subject: two\r\n\r\nclean\r\n.\r\n")).startswith(b"250")
        assert (await client.command(b"QUIT\r\n")).startswith(b"221")
        await client.close()
        assert [raw for _, _, raw, _ in running.inbox.stored] == [b"Subject: two\r\n\r\nclean\r\n"]

    async def test_bare_lf_in_the_text_is_refused(self, running: Running) -> None:
        client = await self._open_data(running)
        assert (await client.command(b"Subject: lf\n\nunix\r\n.\r\n")).startswith(b"550")
        await client.close()
        assert running.inbox.stored == []

    async def test_bare_lf_after_a_command_is_refused(self, running: Running) -> None:
        client = await running.raw()
        assert (await client.command(b"EHLO client.example.com\n")).startswith(b"500 5.5.2")
        assert (await client.command(b"MAIL FROM:<ann@example.com>\r\n")).startswith(b"503")
        await client.close()


class TestStartTls:
    async def test_mail_over_starttls(self, certificate: Certificate) -> None:
        inbox = Inbox()
        listener = await start_listener(inbox, tls_cert=certificate.cert, tls_key=certificate.key)
        context = ssl.create_default_context(cafile=str(certificate.cert))
        try:

            def talk(client: smtplib.SMTP) -> bool:
                client.ehlo("client.example.com")
                offered = client.has_extn("starttls")
                client.starttls(context=context)
                client.sendmail("ann@example.com", [WORKER], MESSAGE)
                return offered

            assert await Running(inbox, listener).smtp(talk)
        finally:
            await listener.stop()
        assert inbox.stored[0][2] == MESSAGE

    def test_a_certificate_needs_its_key(self, certificate: Certificate) -> None:
        inbox = Inbox()
        with pytest.raises(ValueError, match="both"):
            SmtpListener(
                accept_recipient=inbox.accept_recipient,
                store=inbox.store,
                tls_cert=certificate.cert,
            )


class TestLifecycle:
    async def test_stop_closes_open_sessions(self) -> None:
        inbox = Inbox()
        listener = await start_listener(inbox)
        client = await Running(inbox, listener).raw()
        await listener.stop()
        assert await client.reader.read() == b""  # the listener hung up
        await client.close()
        await listener.stop()  # a second stop does nothing

    async def test_the_real_port_of_port_zero(self, running: Running) -> None:
        host, port = running.listener.address
        assert host == "127.0.0.1"
        assert port > 0

    @pytest.mark.parametrize(
        ("host", "reachable"),
        [("127.0.0.1", False), ("::1", False), ("[::1]", False), ("localhost", False),
         ("0.0.0.0", True), ("::", True), ("192.168.1.10", True), ("mx.example.com", True)],
    )  # fmt: skip
    def test_reachable_from_other_hosts(self, host: str, reachable: bool) -> None:
        assert reachable_from_other_hosts(host) is reachable
