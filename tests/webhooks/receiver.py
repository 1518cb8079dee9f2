"""A real HTTP(S) receiver on 127.0.0.1 for delivery tests, one behaviour per path.

| path | answer |
| --- | --- |
| /ok | 200 "thanks" |
| /redirect | 307 to /ok (must not be followed) |
| /hang | nothing until the test ends |
| /gone | 410 |
| /busy | 503, Retry-After: 7 |
| /busy-until | 503, Retry-After: an HTTP-date 30 s ahead |
| /endless | 200 and a body that never ends |
| /utf8 | 200, "a" and 1,000 "é" (2,001 bytes) |
| /error | 500 "boom" |
| /close | closes the connection without a word |
| /stall | 200, then 7 of the 100 bytes it announced, then nothing |
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ReceiverServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.received.append(
            Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        route = self.path.split("?", 1)[0]
        if route == "/hang":
            self.server.release.wait(30)
            return
        if route == "/close":
            self.close_connection = True
            return
        if route == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"partial")
            self.wfile.flush()
            self.server.release.wait(30)
            return
        if route == "/endless":
            self._endless()
            return
        status, headers, payload = {
            "/ok": (200, {}, b"thanks"),
            "/redirect": (307, {"Location": "/ok"}, b""),
            "/gone": (410, {}, b"gone"),
            "/busy": (503, {"Retry-After": "7"}, b"busy"),
            "/busy-until": (503, {"Retry-After": _http_date(30)}, b"busy"),
            "/utf8": (200, {}, ("a" + "é" * 1000).encode()),
            "/error": (500, {}, b"boom"),
        }.get(route, (404, {}, b"no such path"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _endless(self) -> None:
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        chunk = b"x" * 16384
        try:
            while not self.server.release.is_set():
                self.wfile.write(chunk)
        except OSError:
            pass  # the client stopped reading and hung up, as it should
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def _http_date(seconds_ahead: int) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_ahead), usegmt=True)


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[Received] = []
        self.server_names: list[str | None] = []
        self.release = threading.Event()
        if tls is not None:
            tls.sni_callback = self._record_sni
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def paths(self) -> list[str]:
        return [item.path for item in self.received]

    def _record_sni(self, _sock: object, name: str | None, _ctx: object) -> None:
        self.server_names.append(name)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up early are part of the tests

    def __enter__(self) -> ReceiverServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()
