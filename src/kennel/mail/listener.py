"""The SMTP front door: aiosmtpd on the running loop, with who-may-receive and storage injected.

What aiosmtpd 1.4.6 does by itself (read in its smtp.py), and what is added here:

| concern | aiosmtpd 1.4.6 | added here |
| --- | --- | --- |
| end of DATA | only CRLF.CRLF; `\\n.\\n`, `\\r.\\n`, `\\n.\\r\\n` stay text | 550 on bare CR/LF |
| command lines | one ending in a bare LF is obeyed | refused with 500 |
| dot-stuffing | the leading dot of each line is removed | - |
| SIZE | announced; `SIZE=` over the limit and too much data: 552 | - |
| recipients | unlimited | `MAX_RECIPIENTS`, then 452 |
| MIME structure | none | more parts or containers than Kennel reads: 552 |

Refusing the whole message with a bare CR or LF means a "smuggled" second message inside it
is stored neither here nor by any system that later reads the text with looser rules.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from kennel.mail.addresses import normalize_address
from kennel.mail.message import structure_problem
from kennel.metrics import record_database_error, record_mail_accepted, record_mail_refused

__all__ = [
    "ACCEPT",
    "MAX_RECIPIENTS",
    "NO_SUCH_MAILBOX",
    "SENDER_REFUSED",
    "AcceptRecipient",
    "RcptDecision",
    "SmtpListener",
    "Store",
    "reachable_from_other_hosts",
]

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_QUEUE_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII: no reply-line injection


@dataclass(frozen=True, slots=True)
class RcptDecision:
    """The answer to one `RCPT TO`: a 2xx accepts the recipient, anything else is sent as is."""

    code: int
    text: str

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599 or "\r" in self.text or "\n" in self.text:
            raise ValueError(f"not an SMTP reply: {self.code} {self.text!r}")

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}"


ACCEPT = RcptDecision(250, "2.1.5 OK")
NO_SUCH_MAILBOX = RcptDecision(550, "5.1.1 No such mailbox")
SENDER_REFUSED = RcptDecision(550, "5.7.1 Sender not allowed to write to this mailbox")
# The metrics' names of the refusals Kennel makes (kennel_mail_refused_total's `reason`).
_REFUSAL_REASONS = {NO_SUCH_MAILBOX: "unknown_recipient", SENDER_REFUSED: "sender_not_allowed"}

AcceptRecipient = Callable[[str, str], Awaitable[RcptDecision]]
"""(recipient, envelope sender; "" for the null sender `<>`) -> decision."""
Store = Callable[[str, list[str], bytes, str], Awaitable[str]]
"""(envelope sender, recipients, raw message, peer IP) -> stored id; raising means 451."""


class _BareLineFeed(Exception):
    """A command line ended in LF without CR."""


class _StrictReader(asyncio.StreamReader):
    async def readuntil(self, separator: bytes = b"\n") -> bytes:  # type: ignore[override]  # aiosmtpd passes bytes only
        line = await super().readuntil(separator)
        # aiosmtpd reads commands up to b"\n" and strips b"\r\n" without looking; DATA reads
        # up to b"\r\n" and is checked whole in handle_DATA.
        if separator == b"\n" and not line.endswith(b"\r\n"):
            raise _BareLineFeed
        return line


class _StrictSMTP(SMTP):
    def _cb_client_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # SMTP.__init__ builds its StreamReader inline; this is the first place we can reach it.
        reader.__class__ = _StrictReader
        super()._cb_client_connected(reader, writer)


class _Handler:
    """aiosmtpd hooks: each answers one step of the dialogue."""

    def __init__(self, accept_recipient: AcceptRecipient, store: Store) -> None:
        self._accept_recipient = accept_recipient
        self._store = store

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        address = normalize_address(address)
        if address in envelope.rcpt_tos:
            return ACCEPT.reply
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            record_mail_refused("too_many_recipients")
            return "452 4.5.3 Too many recipients"
        try:
            decision = await self._accept_recipient(address, _return_path(envelope))
        except Exception as exc:
            log.exception("accept_recipient failed for %r", address)
            record_mail_refused("recipient_error")
            record_database_error(exc, "mail")
            return "451 4.3.0 Temporary failure, try again later"
        if decision.accepted:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        else:
            record_mail_refused(_REFUSAL_REASONS.get(decision, "recipient_refused"))
        return decision.reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if _BARE_CR_OR_LF.search(raw):
            record_mail_refused("bare_cr_lf")
            return "550 5.5.2 Bare CR or LF in message text: lines must end with CRLF"
        if (problem := structure_problem(raw)) is not None:
            # Refused before the 250, so the sender knows; parsing it would cost seconds.
            record_mail_refused("too_complex")
            return f"552 5.3.4 Message too complex to read: {problem}"
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        try:
            stored = await self._store(_return_path(envelope), list(envelope.rcpt_tos), raw, peer)
        except Exception as exc:
            log.exception("could not store a message from %r", peer)
            record_mail_refused("store_error")
            record_database_error(exc, "mail")
            return "451 4.3.0 Could not store the message, try again later"
        record_mail_accepted()
        if not _QUEUE_ID.fullmatch(stored):
            # Stored already: answering anything but 250 would make the sender send it twice.
            log.error("store returned an id unfit for a reply line: %r", stored)
            return "250 2.0.0 OK"
        return f"250 2.0.0 OK queued as {stored}"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, _BareLineFeed):
            return "500 5.5.2 Command lines must end with CRLF"
        log.error("SMTP session error", exc_info=error)
        return "451 4.3.0 Temporary failure"


def reachable_from_other_hosts(host: str) -> bool:
    """Whether a listener bound to `host` may be reached from other machines (for the start-up
    warning in sender-auth mode `none`); a name other than `localhost` counts as reachable."""
    if host.lower() in ("localhost", "localhost."):
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True


def _return_path(envelope: Envelope) -> str:
    sender = envelope.mail_from or ""
    return "" if sender == "<>" else sender  # aiosmtpd gives the null sender as "<>"


class SmtpListener:
    """An SMTP server on the running loop: `await start()`, `await stop()`, or `async with`."""

    def __init__(
        self,
        *,
        accept_recipient: AcceptRecipient,
        store: Store,
        host: str = "127.0.0.1",
        port: int = 2525,
        max_bytes: int = 10 * 1024 * 1024,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        hostname: str | None = None,
        idle_timeout: float = 300,
        sockets: list[socket.socket] | None = None,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("STARTTLS needs both a certificate and a key")
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.host = host
        self.port = port
        self.max_bytes = max_bytes
        self._handler = _Handler(accept_recipient, store)
        self._tls_files = (tls_cert, tls_key) if tls_cert and tls_key else None
        self._hostname = hostname
        self._idle_timeout = idle_timeout
        # Bound already by `kennel serve` (api/listeners.py), so a busy port was one line
        # before anything started; otherwise bound in start() to host and port.
        self._sockets = sockets
        self._servers: list[asyncio.Server] = []
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    @property
    def address(self) -> tuple[str, int]:
        """The host and port listened on (the real port when 0 was asked for)."""
        if not self._servers:
            raise RuntimeError("the listener is not started")
        host, port = self._servers[0].sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        if self._servers:
            raise RuntimeError("the listener is already started")
        loop = asyncio.get_running_loop()
        tls = self._tls_context()
        # aiosmtpd calls socket.getfqdn() for every connection when no hostname is given: a
        # reverse lookup that can block the loop for seconds. Once here, in a thread.
        hostname = self._hostname or await asyncio.to_thread(socket.getfqdn)

        def session() -> SMTP:
            smtp = _StrictSMTP(
                self._handler,
                data_size_limit=self.max_bytes,
                hostname=hostname,
                ident="Kennel",
                tls_context=tls,
                timeout=self._idle_timeout,
                loop=loop,
            )
            self._sessions.add(smtp)
            return smtp

        if self._sockets is None:
            self._servers = [await loop.create_server(session, self.host, self.port)]
        else:
            self._servers = [await loop.create_server(session, sock=s) for s in self._sockets]

    async def stop(self) -> None:
        servers, self._servers = self._servers, []
        if not servers:
            return
        for server in servers:
            server.close()
        for smtp in list(self._sessions):  # Server.close() leaves open sessions running
            if smtp.transport is not None:
                smtp.transport.close()
        for server in servers:
            await server.wait_closed()
        await asyncio.sleep(0)  # let the closed sessions' connection_lost run

    async def __aenter__(self) -> SmtpListener:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    def _tls_context(self) -> ssl.SSLContext | None:
        if self._tls_files is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*self._tls_files)
        return context
