"""A real HTTP receiver on 127.0.0.1 for webhook tests, with answers a test scripts per path.

with Receiver() as receiver:
    receiver.script("/flaky", [500, 500, 200])    # then 200 for ever (the last repeats)
    receiver.script("/slow", [Answer(200, delay=3)])
    url = receiver.url("/flaky")
    ...
    receiver.wait_for(3)                           # requests received, in order
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Answer", "Received", "Receiver"]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"thanks"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.time() when it arrived


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
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
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (a timeout under test)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, answers: Sequence[int | Answer]) -> None:
        self._scripts[path] = [a if isinstance(a, Answer) else Answer(a) for a in answers]

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
