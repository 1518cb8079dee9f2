"""A stored raw message read into what a task needs: sender, input text, attachments, thread ids."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesHeaderParser, BytesParser
from typing import Any

import html2text

from kennel.mail.quoting import trim_quoted

__all__ = [
    "Attachment",
    "InboundMessage",
    "SkippedAttachment",
    "ThreadHeaders",
    "UnreadableMessage",
    "automatic_reason",
    "one_line",
    "parse_message",
    "safe_filename",
    "sender_of",
    "structure_problem",
    "thread_headers",
]

MAX_ATTACHMENTS = 100
# What the standard `email` package is given at most. It parses a message in one go, in time
# that grows with its parts (0.3 s for 1,000 one-line parts here, and 3x that once their
# attachment names collide) and in recursion with its nesting (RecursionError at about 300
# levels); a few hundred KB of tiny parts cost seconds of CPU. Real mail has tens of parts.
MAX_MIME_PARTS = 500
MAX_MIME_CONTAINERS = 50  # multipart parts, so also the deepest nesting
# html2text reads about 1 MB a second here; a task's input keeps 100,000 characters anyway.
_MAX_HTML_CHARS = 400_000
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)
# The filesystem allows 255 bytes; Workspace.write also writes `.<name>.partial` first.
_MAX_NAME_BYTES = 255 - len("..partial")
_MAX_EXTENSION_BYTES = 16
_MAX_REFERENCES = 100
_MSG_ID = re.compile(r"<[^<>\s]+>")
# Control, format (bidi overrides, zero-width), surrogate, private-use, unassigned, separators.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class UnreadableMessage(ValueError):
    """The stored bytes are not a message Kennel can act on; the text says why."""


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str  # safe for the workspace, unique within the message
    media_type: str
    content: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SkippedAttachment:
    filename: str
    size: int
    reason: str


@dataclass(frozen=True, slots=True)
class InboundMessage:
    from_address: str
    from_name: str
    subject: str
    text: str  # the body as text, the quoted history of a reply trimmed
    attachments: tuple[Attachment, ...]
    skipped: tuple[SkippedAttachment, ...]
    message_id: str | None  # with its angle brackets, as in the header
    in_reply_to: str | None
    references: tuple[str, ...]
    automatic: str | None  # why this is an auto-reply, bounce or list mail; None for a person's

    @property
    def is_automatic(self) -> bool:
        return self.automatic is not None

    @property
    def task_input(self) -> str:
        """Subject, a blank line, then the text (either alone when the other is empty)."""
        return "\n\n".join(part for part in (self.subject, self.text) if part)

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """The Message-IDs this one answers, nearest first: where to look for its task."""
        ids = ([self.in_reply_to] if self.in_reply_to else []) + list(reversed(self.references))
        return tuple(dict.fromkeys(ids))


@dataclass(frozen=True, slots=True)
class ThreadHeaders:
    """What an answer to a message repeats of it."""

    subject: str
    message_id: str | None
    references: tuple[str, ...]


def thread_headers(raw: bytes) -> ThreadHeaders:
    """The subject and thread ids of a stored message, from its headers alone (cheap)."""
    message = BytesHeaderParser(policy=policy.default).parsebytes(raw)
    return _thread_of(message)


def _thread_of(message: EmailMessage) -> ThreadHeaders:
    references = _msg_ids(message.get("References"))
    if len(references) > _MAX_REFERENCES:  # keep the thread's root and the nearest ones
        references = references[:1] + references[-(_MAX_REFERENCES - 1) :]
    return ThreadHeaders(
        subject=one_line(str(message.get("Subject", ""))),
        message_id=next(iter(_msg_ids(message.get("Message-ID"))), None),
        references=tuple(references),
    )


def structure_problem(raw: bytes) -> str | None:
    """Why `raw` has more MIME structure than Kennel reads, or None; linear in its size, no
    parsing, so it can run where the message arrives (the SMTP DATA answer).

    Counts are upper bounds: a part is a line `--<boundary>` for a boundary the message
    declares, a container a declared boundary."""
    boundaries = {b"--" + (quoted or bare) for quoted, bare in _BOUNDARY.findall(raw)}
    if len(boundaries) > MAX_MIME_CONTAINERS:
        return (
            f"{len(boundaries)} multipart containers, at most {MAX_MIME_CONTAINERS} "
            "(nesting included)"
        )
    if not boundaries:
        return None
    prefixes = tuple(boundaries)
    parts, at = int(raw.startswith(prefixes)), raw.find(b"\n--")
    while at != -1:
        parts += raw.startswith(prefixes, at + 1)
        at = raw.find(b"\n--", at + 3)
    if parts > MAX_MIME_PARTS:
        return f"{parts} MIME parts, at most {MAX_MIME_PARTS}"
    return None


def parse_message(
    raw: bytes,
    *,
    envelope_from: str | None = None,
    max_attachment_bytes: int = 10 * 1024 * 1024,
) -> InboundMessage:
    """Read a stored message; `envelope_from` is its MAIL FROM ("" for `<>`) when known."""
    if not raw.strip():
        raise UnreadableMessage("the message is empty")
    if (problem := structure_problem(raw)) is not None:
        raise UnreadableMessage(f"too complex: {problem}")
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        return _read(message, envelope_from, max_attachment_bytes)
    except UnreadableMessage:
        raise
    except Exception as exc:  # the email package raises assorted errors on hostile input
        raise UnreadableMessage(f"cannot read the message: {exc!r}") from exc


def _read(message: EmailMessage, envelope_from: str | None, limit: int) -> InboundMessage:
    name, address = sender_of(message)
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    if plain is not None:
        text = _text_of(plain)
    elif html is not None:
        text = _html_to_text(_text_of(html)[:_MAX_HTML_CHARS])
    else:
        text = ""
    in_reply_to = _msg_ids(message.get("In-Reply-To"))
    references = _msg_ids(message.get("References"))
    if in_reply_to or references:  # only a reply has history to trim; a forward keeps it
        text = trim_quoted(text)
    attachments, skipped = _attachments(message, (plain, html), limit)
    thread = _thread_of(message)
    return InboundMessage(
        from_address=address,
        from_name=name,
        subject=thread.subject,
        text=text.strip(),
        attachments=attachments,
        skipped=skipped,
        message_id=thread.message_id,
        in_reply_to=next(iter(in_reply_to), None),
        references=thread.references,
        automatic=automatic_reason(message, envelope_from),
    )


def sender_of(message: EmailMessage) -> tuple[str, str]:
    """(display name, address) of the one From: address; UnreadableMessage otherwise."""
    headers = message.get_all("From") or []
    if len(headers) != 1:
        raise UnreadableMessage(f"the message has {len(headers)} From: headers, not one")
    addresses: tuple[Any, ...] = getattr(headers[0], "addresses", ())
    if len(addresses) != 1 or "@" not in addresses[0].addr_spec:
        raise UnreadableMessage(f"From: must name one address, not {str(headers[0])!r}")
    return one_line(addresses[0].display_name), addresses[0].addr_spec


def automatic_reason(message: EmailMessage, envelope_from: str | None = None) -> str | None:
    """Why this message was sent by a machine (RFC 3834 and common practice), or None.

    | sign | why it counts |
    | --- | --- |
    | empty return path (`MAIL FROM:<>` or `Return-Path: <>`) | bounces and receipts |
    | `Auto-Submitted` other than `no` | RFC 3834 auto-replies and auto-generated mail |
    | `Precedence: bulk`, `junk` or `list` | vacation responders' traditional mark |
    | `X-Autoreply`, `X-Autorespond` (any value) | older responders |
    | `X-Auto-Response-Suppress: All`/`OOF`/`AutoReply` | asks for no auto-answer, as ours is |
    | `List-Id` | list mail: lists may rewrite `From:`, the answer would reach all |
    | `multipart/report` | delivery and read reports |
    """
    if envelope_from == "":
        return "empty return path"
    if str(message.get("Return-Path", "")).strip() == "<>":
        return "Return-Path: <>"
    auto = _token(message.get("Auto-Submitted"))
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    if _token(message.get("Precedence")) in {"bulk", "junk", "list"}:
        return f"Precedence: {_token(message.get('Precedence'))}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if name in message:
            return f"{name} present"
    suppress = {
        v.strip().lower() for v in str(message.get("X-Auto-Response-Suppress", "")).split(",")
    }
    if {"all", "oof", "autoreply"} & set(suppress):
        return "X-Auto-Response-Suppress asks for no automatic answer"
    if "List-Id" in message:
        return "List-Id present: mailing-list mail"
    if message.get_content_type() == "multipart/report":
        return "delivery or read report"
    return None


def safe_filename(name: str | None, media_type: str = "application/octet-stream") -> str:
    """A file name that is one harmless path component, at most 246 bytes of UTF-8."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]  # "C:\\x\\report.pdf" and "../../x" keep their last part
    name = "".join(
        " " if char.isspace() else char
        for char in name
        if char.isspace() or unicodedata.category(char) not in _DROPPED
    )
    name = re.sub(r" {2,}", " ", name).lstrip(" .").rstrip(" .")  # no hidden files, no "." / ".."
    if not name:
        extension = (
            ".eml" if media_type == "message/rfc822" else mimetypes.guess_extension(media_type)
        )
        name = f"attachment{extension or ''}"
    return _fit(name, "")


def _fit(name: str, suffix: str) -> str:
    """`name` with `suffix` before its extension, cut to fit `_MAX_NAME_BYTES`."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode()) > _MAX_EXTENSION_BYTES:
        stem, extension = name, ""
    tail = f"{suffix}.{extension}" if extension else suffix
    budget = _MAX_NAME_BYTES - len(tail.encode())
    return stem.encode()[:budget].decode("utf-8", "ignore").rstrip(" .") + tail


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 1
    while candidate.casefold() in taken:  # case-folded: the files may be unpacked on a Mac
        number += 1
        candidate = _fit(name, f" ({number})")
    taken.add(candidate.casefold())
    return candidate


def _attachments(
    message: EmailMessage, bodies: tuple[MIMEPart | None, ...], limit: int
) -> tuple[tuple[Attachment, ...], tuple[SkippedAttachment, ...]]:
    kept: list[Attachment] = []
    skipped: list[SkippedAttachment] = []
    taken: set[str] = set()
    for part in _leaves(message):
        if any(part is body for body in bodies) or not _is_attachment(part):
            continue
        media_type = part.get_content_type()
        filename = _unique(safe_filename(part.get_filename(), media_type), taken)
        content = _bytes_of(part)
        if len(content) > limit:
            skipped.append(SkippedAttachment(filename, len(content), f"over {limit} bytes"))
        elif len(kept) >= MAX_ATTACHMENTS:
            skipped.append(SkippedAttachment(filename, len(content), "too many attachments"))
        else:
            kept.append(Attachment(filename, media_type, content))
    return tuple(kept), tuple(skipped)


def _leaves(part: MIMEPart) -> list[MIMEPart]:
    if part.get_content_maintype() != "multipart":
        return [part]  # message/rfc822 too: an attached e-mail is one file, not opened up
    return [leaf for sub in part.iter_parts() for leaf in _leaves(sub)]


def _is_attachment(part: MIMEPart) -> bool:
    if part.get_filename() or part.get_content_disposition() == "attachment":
        return True
    return part.get_content_type() not in ("text/plain", "text/html")  # inline images, invites


def _bytes_of(part: MIMEPart) -> bytes:
    if part.get_content_type() == "message/rfc822":
        return bytes(part.get_content().as_bytes())
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _text_of(part: MIMEPart) -> str:
    try:
        text = str(part.get_content())
    except (LookupError, UnicodeError):  # an unknown or lying charset
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _html_to_text(html: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = 0  # no hard wrapping: the model reads whole paragraphs better
    converter.ignore_images = True
    return converter.handle(html)


def _msg_ids(value: object) -> list[str]:
    return list(dict.fromkeys(_MSG_ID.findall(str(value)))) if value is not None else []


def _token(value: object) -> str:
    """The first word of a header like `Auto-Submitted: auto-replied; owner=x`, lower case."""
    return str(value).split(";")[0].strip().lower() if value is not None else ""


def one_line(value: str) -> str:
    """`value` without line breaks or controls (encoded words can smuggle them into a header)."""
    return " ".join("".join(c if unicodedata.category(c)[0] != "C" else " " for c in value).split())
