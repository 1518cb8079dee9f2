"""A listener on 127.0.0.1 with recording stand-ins for its two decisions, and SMTP clients."""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio

from kennel.mail.listener import ACCEPT, NO_SUCH_MAILBOX, SENDER_REFUSED, RcptDecision, SmtpListener

T = TypeVar("T")
WORKER = "worker@kennel.test"
MAX_BYTES = 20_000


@dataclass
class Inbox:
    """What the listener would ask the database, answered from sets; what it stored, in a list."""

    known: set[str] = field(default_factory=lambda: {WORKER})
    refused_senders: set[str] = field(default_factory=set)
    stored: list[tuple[str, list[str], bytes, str]] = field(default_factory=list)
    store_fails: bool = False
    asked: list[tuple[str, str]] = field(default_factory=list)

    async def accept_recipient(self, address: str, mail_from: str) -> RcptDecision:
        self.asked.append((address, mail_from))
        if address not in self.known:
            return NO_SUCH_MAILBOX
        if mail_from in self.refused_senders:
            return SENDER_REFUSED
        return ACCEPT

    async def store(self, envelope_from: str, recipients: list[str], raw: bytes, peer: str) -> str:
        if self.store_fails:
            raise OSError("disk full")
        self.stored.append((envelope_from, recipients, raw, peer))
        return f"msg{len(self.stored)}"


@dataclass
class Running:
    inbox: Inbox
    listener: SmtpListener

    @property
    def port(self) -> int:
        return self.listener.address[1]

    async def smtp(self, talk: Callable[[smtplib.SMTP], T]) -> T:
        """Run `talk` with a connected smtplib client in a thread (smtplib blocks)."""

        def run() -> T:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
                return talk(client)

        return await asyncio.to_thread(run)

    async def raw(self) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        client = RawClient(reader, writer)
        assert (await client.reply()).startswith(b"220")
        return client


class RawClient:
    """Bytes on a socket, as a client that does not follow the rules would send them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> bytes:
        """One whole reply (the last line of a multi-line one), without CRLF."""
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 5)
            if not line:
                raise ConnectionError("closed by the listener")
            if line[3:4] != b"-":
                return line.rstrip(b"\r\n")

    async def command(self, data: bytes) -> bytes:
        await self.send(data)
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def start_listener(inbox: Inbox, **options: object) -> SmtpListener:
    listener = SmtpListener(
        accept_recipient=inbox.accept_recipient,
        store=inbox.store,
        host="127.0.0.1",
        port=0,
        max_bytes=MAX_BYTES,
        hostname="mx.kennel.test",
        **options,  # type: ignore[arg-type]
    )
    await listener.start()
    return listener


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Running]:
    inbox = Inbox()
    listener = await start_listener(inbox)
    try:
        yield Running(inbox, listener)
    finally:
        await listener.stop()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)
