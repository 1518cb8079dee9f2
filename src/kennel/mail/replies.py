"""The answer to a message: a threaded reply built as an EmailMessage, sent through the relay.

The reply is marked `Auto-Submitted: auto-replied` (RFC 3834), so other responders, and Kennel
itself, do not answer it; and `X-Auto-Response-Suppress: All`, which asks Exchange for no
out-of-office answer. Its envelope sender is the worker's address (the `From:`): a bounce of a
reply comes back with an empty return path, which starts nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

import aiosmtplib

from kennel.core.parsers import parse_host_port
from kennel.mail.message import one_line

__all__ = [
    "OutgoingFile",
    "RelayError",
    "RelaySettings",
    "Reply",
    "build_reply",
    "failed_turn_text",
    "new_message_id",
    "reply_subject",
    "send",
]

_MAX_REFERENCES = 20  # RFC 5322 3.6.4 lets a long References list lose its middle
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|antw)(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]")


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """Where answers are sent: `KENNEL_SMTP_RELAY` and its options."""

    host: str
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False  # upgrade a plain connection (typically port 587)
    tls: bool = False  # TLS from the first byte (typically port 465)
    timeout: float = 30.0
    ca_file: str | None = None  # a private CA for the relay's certificate

    def __post_init__(self) -> None:
        if self.starttls and self.tls:
            raise ValueError("choose STARTTLS or TLS for the relay, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("the relay's username and password go together")
        if not 0 < self.port < 65536:
            raise ValueError(f"not a port: {self.port}")

    @classmethod
    def from_address(cls, address: str, **options: Any) -> RelaySettings:
        """From `host:port`, `host` (port 25) or `[IPv6]:port`."""
        host, port = parse_host_port(address, 25)
        return cls(host, port, **options)


@dataclass(frozen=True, slots=True)
class OutgoingFile:
    filename: str
    media_type: str
    content: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Reply:
    message: EmailMessage
    message_id: str  # record it: a reply to this reply names it in In-Reply-To
    omitted: tuple[str, ...]  # files left out to stay within the size limit


class RelayError(Exception):
    """The relay could not be reached or did not take the reply."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary  # worth retrying: the relay was down or answered 4xx


def reply_subject(subject: str) -> str:
    """`Re: <subject>`, with any `Re:`/`AW:`/`SV:` prefixes it already had taken off first."""
    subject = _REPLY_PREFIX.sub("", one_line(subject))
    return f"Re: {subject}" if subject else "Re: your message"


def new_message_id(mail_domain: str, key: str | None = None) -> str:
    """A Message-ID under the mail domain; the same for the same `key` (a turn's id), so a
    retried send of one answer keeps one identity."""
    if key is None:
        return make_msgid(domain=mail_domain)
    return f"<{_ID_UNSAFE.sub('-', key)}@{mail_domain}>"


def build_reply(
    *,
    from_address: str,
    to: str,
    subject: str,
    text: str,
    mail_domain: str,
    from_name: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    attachments: Sequence[OutgoingFile] = (),
    max_attachment_bytes: int = 10 * 1024 * 1024,
    message_id: str | None = None,
) -> Reply:
    """The answer to the message `in_reply_to`; files are attached in order while they fit."""
    message = EmailMessage()
    message["From"] = formataddr((one_line(from_name or ""), from_address))
    message["To"] = to
    message["Subject"] = reply_subject(subject)
    message["Date"] = formatdate(usegmt=True)
    own_id = message_id or new_message_id(mail_domain)
    message["Message-ID"] = own_id
    thread = list(dict.fromkeys([*references, *([in_reply_to] if in_reply_to else [])]))
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if thread:
        if len(thread) > _MAX_REFERENCES:  # keep the root and the nearest
            thread = thread[:1] + thread[-(_MAX_REFERENCES - 1) :]
        message["References"] = " ".join(thread)
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    kept, omitted, total = [], [], 0
    for file in attachments:
        if total + len(file.content) > max_attachment_bytes:
            omitted.append(file.filename)
            continue
        total += len(file.content)
        kept.append(file)
    if omitted:
        text = f"{text.rstrip()}\n\n(Not attached, over the size limit: {', '.join(omitted)})"
    message.set_content(text)
    for file in kept:
        maintype, _, subtype = file.media_type.partition("/")
        if not subtype:
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(file.content, maintype, subtype, filename=file.filename)
    return Reply(message, own_id, tuple(omitted))


def failed_turn_text(error: str | None = None) -> str:
    """The text of the answer to a turn that ended in error."""
    text = "Sorry, I could not finish this request."
    if error:
        text += f"\n\nWhat went wrong: {one_line(error)[:500]}"
    return text + "\n\nYou can reply to this message to try again."


async def send(message: EmailMessage, relay: RelaySettings) -> None:
    """Hand `message` to the relay; RelayError when it is not taken."""
    where = f"relay {relay.host}:{relay.port}"
    try:
        await aiosmtplib.send(
            message,
            hostname=relay.host,
            port=relay.port,
            username=relay.username,
            password=relay.password,
            start_tls=relay.starttls,
            use_tls=relay.tls,
            timeout=relay.timeout,
            cert_bundle=relay.ca_file,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [refused.code for refused in exc.recipients]
        raise RelayError(
            f"{where} refused the recipient: {exc}", temporary=all(400 <= c < 500 for c in codes)
        ) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise RelayError(
            f"{where} answered {exc.code} {exc.message}", temporary=400 <= exc.code < 500
        ) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:  # refused, unreachable, timed out, TLS
        raise RelayError(f"{where} could not be reached: {exc}", temporary=True) from exc
