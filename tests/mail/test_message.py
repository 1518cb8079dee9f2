"""Reading a stored message: text, input, attachments, thread ids, machine-sent mail."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from kennel.mail.message import (
    MAX_ATTACHMENTS,
    MAX_MIME_CONTAINERS,
    MAX_MIME_PARTS,
    UnreadableMessage,
    parse_message,
    safe_filename,
    structure_problem,
    thread_headers,
)
from tests.factories.mail import many_parts, nested


def _message(body: str = "Please summarise the report.", **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = headers.pop("From", "Ann Example <ann@example.com>")
    message["To"] = "worker@kennel.test"
    message["Subject"] = headers.pop("Subject", "Quarterly report")
    message["Message-ID"] = "<m1@example.com>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


class TestText:
    def test_plain(self) -> None:
        read = parse_message(_message().as_bytes())
        assert (read.from_address, read.from_name) == ("ann@example.com", "Ann Example")
        assert read.subject == "Quarterly report"
        assert read.text == "Please summarise the report."
        assert read.task_input == "Quarterly report\n\nPlease summarise the report."
        assert read.message_id == "<m1@example.com>"
        assert not read.is_automatic

    def test_plain_is_preferred_to_html(self) -> None:
        message = _message("plain words")
        message.add_alternative("<p>html words</p>", subtype="html")
        assert parse_message(message.as_bytes()).text == "plain words"

    def test_html_only_becomes_text(self) -> None:
        message = _message()
        message.set_content(
            "<html><body><h1>Hi</h1><p>Please <b>check</b> <a href='https://x.test/'>this</a>"
            "</p><ul><li>one</li></ul><script>alert(1)</script></body></html>",
            subtype="html",
        )
        text = parse_message(message.as_bytes()).text
        assert "# Hi" in text
        assert "Please **check** [this](https://x.test/)" in text
        assert "* one" in text
        assert "<" not in text

    def test_encoded_subject_cannot_break_lines(self) -> None:
        raw = (
            b"From: ann@example.com\r\nSubject: =?utf-8?q?caf=C3=A9=0D=0ABcc:_x@evil.test?=\r\n"
            b"\r\nhi\r\n"
        )
        assert parse_message(raw).subject == "caf\u00e9 Bcc: x@evil.test"

    def test_unknown_charset_is_read_leniently(self) -> None:
        raw = (
            b"From: ann@example.com\r\nSubject: s\r\n"
            b"Content-Type: text/plain; charset=x-klingon\r\n\r\nbonjour \xc3\xa9\r\n"
        )
        assert parse_message(raw).text == "bonjour \u00e9"

    def test_no_subject_input_is_the_text(self) -> None:
        read = parse_message(b"From: ann@example.com\r\n\r\njust text\r\n")
        assert read.task_input == "just text"


class TestReply:
    def test_history_of_a_reply_is_trimmed(self) -> None:
        body = (
            "Yes, go ahead.\n\nOn Tue, 3 Dec 2024 at 10:00, Worker <worker@kennel.test> wrote:\n"
            "> Shall I send it?\n"
        )
        message = _message(
            body, In_Reply_To="<k1@kennel.test>", References="<m0@example.com> <k1@kennel.test>"
        )
        read = parse_message(message.as_bytes())
        assert read.text == "Yes, go ahead."
        assert read.in_reply_to == "<k1@kennel.test>"
        assert read.references == ("<m0@example.com>", "<k1@kennel.test>")
        assert read.thread_ids == ("<k1@kennel.test>", "<m0@example.com>")

    def test_a_new_message_keeps_its_quotes(self) -> None:
        body = "See below.\n\n-----Original Message-----\nFrom: Bob\n\nthe forwarded text"
        assert parse_message(_message(body).as_bytes()).text == body


class TestAttachments:
    def test_attachments_with_safe_unique_names(self) -> None:
        message = _message()
        message.add_attachment(b"%PDF-1", maintype="application", subtype="pdf",
                               filename="../../etc/report.pdf")  # fmt: skip
        message.add_attachment(b"%PDF-2", maintype="application", subtype="pdf",
                               filename="C:\\Users\\ann\\Report.PDF")  # fmt: skip
        message.add_attachment(b"\x89PNG", maintype="image", subtype="png")
        read = parse_message(message.as_bytes())
        assert [(a.filename, a.media_type, a.content) for a in read.attachments] == [
            ("report.pdf", "application/pdf", b"%PDF-1"),
            ("Report (2).PDF", "application/pdf", b"%PDF-2"),
            ("attachment.png", "image/png", b"\x89PNG"),
        ]
        assert read.text == "Please summarise the report."

    def test_too_big_is_skipped_and_noted(self) -> None:
        message = _message()
        message.add_attachment(b"x" * 101, maintype="text", subtype="csv", filename="big.csv")
        message.add_attachment(b"y" * 100, maintype="text", subtype="csv", filename="ok.csv")
        read = parse_message(message.as_bytes(), max_attachment_bytes=100)
        assert [a.filename for a in read.attachments] == ["ok.csv"]
        assert [(s.filename, s.size) for s in read.skipped] == [("big.csv", 101)]

    def test_at_most_so_many_files(self) -> None:
        message = _message()
        for i in range(MAX_ATTACHMENTS + 1):
            message.add_attachment(b"x", maintype="text", subtype="plain", filename=f"{i}.txt")
        read = parse_message(message.as_bytes())
        assert len(read.attachments) == MAX_ATTACHMENTS
        assert read.skipped[0].reason == "too many attachments"

    def test_an_attached_email_is_one_file(self) -> None:
        message = _message()
        inner = _message("inner body", Subject="inner")
        inner.add_attachment(b"nested", maintype="text", subtype="plain", filename="nested.txt")
        message.add_attachment(inner)
        read = parse_message(message.as_bytes())
        assert [(a.filename, a.media_type) for a in read.attachments] == [
            ("attachment.eml", "message/rfc822")
        ]
        assert b"inner body" in read.attachments[0].content


class TestSafeFilename:
    @pytest.mark.parametrize(
        ("given", "safe"),
        [
            ("report.pdf", "report.pdf"),
            ("../../etc/passwd", "passwd"),
            ("dir\\sub\\a.txt", "a.txt"),
            (".bashrc", "bashrc"),
            ("..", "attachment.bin"),
            (".", "attachment.bin"),
            ("", "attachment.bin"),
            (None, "attachment.bin"),
            ("invoice\u202efdp.exe", "invoicefdp.exe"),  # right-to-left override
            ("a\u200bb\x00c\x1b[31m.txt", "abc[31m.txt"),
            ("tab\there\nnew.txt", "tab here new.txt"),
            ("  spaced  out .txt . ", "spaced out.txt"),
            ("caf\u0065\u0301.txt", "caf\u00e9.txt"),  # NFC
        ],
    )
    def test_names(self, given: str | None, safe: str) -> None:
        assert safe_filename(given) == safe

    def test_fallback_has_the_type_extension(self) -> None:
        assert safe_filename(None, "application/pdf") == "attachment.pdf"

    def test_long_names_are_cut_on_a_character_keeping_the_extension(self) -> None:
        name = safe_filename("\u00e9" * 300 + ".docx")
        assert len(name.encode()) <= 246
        assert name.endswith("\u00e9.docx")

    def test_a_long_extension_is_just_text(self) -> None:
        name = safe_filename("a." + "b" * 300)
        assert len(name.encode()) <= 246
        assert name.startswith("a.bbb")


class TestAutomatic:
    @pytest.mark.parametrize(
        ("headers", "envelope_from", "automatic"),
        [
            ({}, "ann@example.com", False),
            ({}, None, False),
            ({}, "", True),
            ({"Return-Path": "<>"}, None, True),
            ({"Auto-Submitted": "no"}, None, False),
            ({"Auto-Submitted": "No"}, None, False),
            ({"Auto-Submitted": "auto-replied"}, None, True),
            ({"Auto-Submitted": "auto-generated; owner-email=x@example.com"}, None, True),
            ({"Precedence": "bulk"}, None, True),
            ({"Precedence": "Junk"}, None, True),
            ({"Precedence": "list"}, None, True),
            ({"Precedence": "first-class"}, None, False),
            ({"X-Autoreply": "yes"}, None, True),
            ({"X-Autorespond": "Out of office"}, None, True),
            ({"X-Auto-Response-Suppress": "DR, OOF"}, None, True),
            ({"X-Auto-Response-Suppress": "RN, NRN"}, None, False),
            ({"List-Id": "Team <team.lists.example.com>"}, None, True),
        ],
    )
    def test_table(
        self, headers: dict[str, str], envelope_from: str | None, automatic: bool
    ) -> None:
        message = _message()
        for name, value in headers.items():
            message[name] = value
        read = parse_message(message.as_bytes(), envelope_from=envelope_from)
        assert read.is_automatic is automatic, read.automatic

    def test_a_delivery_report(self) -> None:
        raw = (
            b"From: MAILER-DAEMON@mx.example.com\r\nSubject: Undelivered\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\ngone\r\n--b--\r\n"
        )
        assert parse_message(raw).automatic == "delivery or read report"


class TestUnreadable:
    @pytest.mark.parametrize(
        ("raw", "why"),
        [
            (b"", "empty"),
            (b"  \r\n", "empty"),
            (b"Subject: no sender\r\n\r\nhi\r\n", "0 From"),
            (b"From: a@example.com\r\nFrom: b@example.com\r\n\r\nhi\r\n", "2 From"),
            (b"From: a@example.com, b@example.com\r\n\r\nhi\r\n", "one address"),
            (b"From: nobody\r\n\r\nhi\r\n", "one address"),
            (b"\x00\xff\xfe garbage without headers", "From"),
        ],
    )
    def test_refused_with_a_reason(self, raw: bytes, why: str) -> None:
        with pytest.raises(UnreadableMessage, match=why):
            parse_message(raw)


class TestStructureBounds:
    """A few hundred KB of tiny parts cost the email package seconds; deep nesting a
    RecursionError. Kennel reads at most so much structure, and says what it refused."""

    def test_a_message_at_the_bounds_is_read(self) -> None:
        assert structure_problem(many_parts(MAX_MIME_PARTS - 1)) is None
        assert structure_problem(nested(MAX_MIME_CONTAINERS)) is None
        message = parse_message(many_parts(MAX_MIME_PARTS - 1))
        assert len(message.attachments) == MAX_ATTACHMENTS
        assert parse_message(nested(MAX_MIME_CONTAINERS)).text == "hi"

    def test_thousands_of_parts_are_refused_without_parsing(self) -> None:
        assert structure_problem(many_parts(5_000)) == "5001 MIME parts, at most 500"
        with pytest.raises(UnreadableMessage, match="too complex: 5001 MIME parts"):
            parse_message(many_parts(5_000))

    def test_deep_nesting_is_refused_not_a_recursion_error(self) -> None:
        with pytest.raises(UnreadableMessage, match="too complex: 1000 multipart containers"):
            parse_message(nested(1_000))

    def test_dashes_in_the_text_are_not_parts(self) -> None:
        raw = b"From: a@example.com\r\nSubject: x\r\n\r\n" + b"-- \r\n--B\r\n" * 2_000
        assert structure_problem(raw) is None

    def test_html_is_converted_up_to_a_bound(self) -> None:
        message = EmailMessage()
        message["From"] = "a@example.com"
        message.set_content("<p>" + "word " * 200_000 + "</p><p>TAIL</p>", subtype="html")
        text = parse_message(bytes(message)).text
        assert "word" in text
        assert "TAIL" not in text  # past the part converted; a task keeps 100,000 chars anyway


class TestThreadHeaders:
    def test_read_from_the_headers_alone(self) -> None:
        raw = bytes(_message(In_Reply_To="<a@x>", References="<r@x> <a@x>"))
        headers = thread_headers(raw)
        parsed = parse_message(raw)
        assert (
            (headers.subject, headers.message_id, headers.references)
            == (
                parsed.subject,
                parsed.message_id,
                parsed.references,
            )
            == ("Quarterly report", "<m1@example.com>", ("<r@x>", "<a@x>"))
        )

    def test_unaffected_by_a_hostile_body(self) -> None:
        assert thread_headers(nested(1_000)).subject == "parts"
