"""The SMTP front door: the listener on a loop and thread of its own, a `BackgroundService`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading

from kennel.core import wakeup
from kennel.core.runtime import Runtime
from kennel.db import open_database
from kennel.mail.listener import RcptDecision, SmtpListener, reachable_from_other_hosts
from kennel.mail.policy import accept_recipient
from kennel.mail.storage import store
from kennel.mail.workflows import resume_intakes, start_intake

__all__ = ["FrontDoor"]

log = logging.getLogger("kennel.mail")

# After a message comes in, how long no queue is polled (the next message of a burst is sooner).
MAIL_BURST_SECONDS = 0.1


class FrontDoor:
    """The SMTP listener, on an event loop and thread of its own (a `BackgroundService`).

    Taking mail in is cheap (measured here, 230 messages a second from one sender with nothing
    else to do), but on the server's loop it waited behind the turns the mail starts, whose
    model calls and steps come many times a second: 10 messages a second were accepted. On its
    own loop it answers once the message's row is committed; the intake's workflow is queued
    from the server's loop (a message whose intake was not queued before a crash is found
    `stored` at the next start-up). Its database connections are its own (PostgreSQL
    connections belong to one loop); its settings are the server's."""

    def __init__(self, rt: Runtime, *, sockets: list[socket.socket] | None = None) -> None:
        self._rt = rt
        self._sockets = sockets  # bound by `kennel serve`; None: bind host and port here
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: SmtpListener | None = None
        self._failure: BaseException | None = None
        self._ready = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None
        return self._listener.address

    async def start(self) -> None:
        """Listen; then start the intakes of messages kept but not yet taken in."""
        self._thread = threading.Thread(
            target=self._run, args=(asyncio.get_running_loop(),), name="kennel-smtp", daemon=True
        )
        self._thread.start()
        await asyncio.to_thread(self._ready.wait)
        if self._failure is not None:
            raise self._failure
        await resume_intakes(self._rt)
        settings = self._rt.settings
        if settings.mail_sender_auth == "none" and reachable_from_other_hosts(settings.smtp_host):
            log.warning(
                "the SMTP listener on %s can be reached from other hosts, and "
                "KENNEL_MAIL_SENDER_AUTH=none believes any From: an allowed sender writes: "
                "put it behind your own mail server, or set KENNEL_MAIL_SENDER_AUTH",
                settings.smtp_host,
            )

    async def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 30)

    def _run(self, server_loop: asyncio.AbstractEventLoop) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        db = open_database(self._rt.settings, connections=self._rt.settings.connection_shares.smtp)
        main = self._rt

        def here() -> Runtime:  # the server's settings and model as they are now, this db
            return Runtime(main.settings, db, main.model)

        async def on_rcpt(address: str, mail_from: str) -> RcptDecision:
            return await accept_recipient(here(), address, mail_from)

        async def on_data(envelope_from: str, recipients: list[str], raw: bytes, peer: str) -> str:
            # Taken in first, started after: no queue is polled while messages keep coming
            # (for 2 s at most at a time). Started meanwhile, the intakes and turns of the
            # messages before held SQLite's write lock while this store waited for it: 13 of
            # its 14.5 ms, and 30 messages a second from one sender instead of 250.
            wakeup.defer(MAIL_BURST_SECONDS)
            return await store(here(), envelope_from, recipients, raw, peer, start=on_server)

        def on_server(message_id: str) -> None:
            # Queued from the server's loop, so the 250 waits for the message's row only, not
            # for DBOS's write of the workflow (which waited on SQLite's lock behind turns).
            future = asyncio.run_coroutine_threadsafe(start_intake(message_id), server_loop)
            future.add_done_callback(lambda done: _log_failure(done, message_id))

        settings = main.settings
        self._listener = SmtpListener(
            accept_recipient=on_rcpt,
            store=on_data,
            host=settings.smtp_host,
            port=settings.smtp_port,
            max_bytes=settings.mail_max_bytes,
            tls_cert=settings.smtp_tls_cert,
            tls_key=settings.smtp_tls_key,
            hostname=settings.smtp_hostname,
            sockets=self._sockets,
        )
        try:
            loop.run_until_complete(self._listener.start())
        except BaseException as exc:  # told to whoever waits in start()
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._listener.stop())
            loop.run_until_complete(db.dispose())
            loop.close()


def _log_failure(done: concurrent.futures.Future[None], message_id: str) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error(
            "starting the intake of message %s failed; it starts at the next start-up",
            message_id,
            exc_info=done.exception(),
        )
