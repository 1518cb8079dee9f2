"""The one HTTP(S) receiver of webhook tests, on 127.0.0.1, with answers a test scripts per path.

with Receiver() as receiver:
    receiver.script("/flaky", [500, 500, 200])    # then 200 for ever (the last repeats)
    receiver.script("/slow", [Answer(200, delay=3)])
    url = receiver.url("/flaky")
    ...
    receiver.wait_for(3)                           # requests received, in order

An unscripted path answers 200 "thanks". `misbehaving()` scripts the paths of the delivery
tests, one misbehaviour each (`MISBEHAVIOURS`); `Receiver(tls=context)` serves HTTPS and
records the server names clients asked for.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

__all__ = ["MISBEHAVIOURS", "Answer", "Received", "Receiver"]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"thanks"
    # A value may be a function, asked when the request comes (a date relative to then).
    headers: dict[str, str | Callable[[], str]] = field(default_factory=dict)
    delay: float = 0.0
    # Not an answer: "hang" (nothing until the receiver closes), "close" (hang up at once),
    # "stall" (200, then 7 of the 100 bytes announced), "endless" (a body that never ends).
    misbehave: Literal["hang", "close", "stall", "endless"] | None = None


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.time() when it arrived


def _http_date(seconds_ahead: int) -> Callable[[], str]:
    return lambda: format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_ahead), True)


MISBEHAVIOURS: dict[str, Answer] = {
    "/ok": Answer(),
    "/redirect": Answer(307, b"", {"Location": "/ok"}),  # must not be followed
    "/hang": Answer(misbehave="hang"),
    "/gone": Answer(410, b"gone"),
    "/busy": Answer(503, b"busy", {"Retry-After": "7"}),
    "/busy-until": Answer(503, b"busy", {"Retry-After": _http_date(30)}),
    "/endless": Answer(misbehave="endless"),
    "/utf8": Answer(200, ("a" + "é" * 1000).encode()),  # 2,001 bytes
    "/error": Answer(500, b"boom"),
    "/close": Answer(misbehave="close"),
    "/stall": Answer(misbehave="stall"),
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up early are part of the tests


class Receiver:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[Received] = []
        self.server_names: list[str | None] = []  # asked for in TLS handshakes (SNI)
        self.release = threading.Event()  # set when the receiver closes: hanging answers end
        self._scripts: dict[str, list[Answer]] = {}
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = receiver._next(self.path)
                with receiver._lock:
                    receiver.received.append(Received(self.path, headers, body, time.time()))
                    receiver._lock.notify_all()
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    if answer.misbehave is not None:
                        self._misbehave(answer.misbehave)
                        return
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value if isinstance(value, str) else value())
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (a timeout under test)

            def _misbehave(self, how: str) -> None:
                if how == "close":
                    self.close_connection = True
                elif how == "hang":
                    receiver.release.wait(30)
                elif how == "stall":
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b"partial")
                    self.wfile.flush()
                    receiver.release.wait(30)
                else:  # endless
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    chunk = b"x" * 16384
                    try:
                        while not receiver.release.is_set():
                            self.wfile.write(chunk)
                    except OSError:
                        pass  # the client stopped reading and hung up, as it should
                    self.close_connection = True

            def log_message(self, *_: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            tls.sni_callback = self._record_sni
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, answers: Sequence[int | Answer]) -> None:
        self._scripts[path] = [a if isinstance(a, Answer) else Answer(a) for a in answers]

    def misbehaving(self) -> Receiver:
        """Script every path of `MISBEHAVIOURS`."""
        for path, answer in MISBEHAVIOURS.items():
            self.script(path, [answer])
        return self

    def paths(self) -> list[str]:
        return [item.path for item in self.received]

    def forget(self) -> None:
        """Forget the requests and server names seen so far (a receiver shared by tests)."""
        with self._lock:
            self.received.clear()
            self.server_names.clear()

    def _record_sni(self, _sock: object, name: str | None, _ctx: object) -> None:
        self.server_names.append(name)

    def _next(self, path: str) -> Answer:
        with self._lock:
            answers = self._scripts.get(path.split("?", 1)[0], [])
            if not answers:
                return Answer()
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def wait_for(
        self, count: int, timeout: float = 20.0, path: str | None = None
    ) -> list[Received]:
        """The first `count` requests (to `path`, if given), waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(found := self._to(path)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{len(found)} of {count} requests arrived")
                self._lock.wait(remaining)
            return found[:count]

    def _to(self, path: str | None) -> list[Received]:
        return [r for r in self.received if path is None or r.path == path]

    def __iter__(self) -> Iterator[Received]:
        return iter(list(self.received))
