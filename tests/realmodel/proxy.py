"""A small HTTP proxy in front of the model server that fails on request, the way providers do.

with FaultProxy(upstream_port) as proxy:
    proxy.fault = Fault("status", status=429)   # every request answered 429, no forwarding
    proxy.fault = Fault("cut", after_bytes=600)  # the answer forwarded, then the socket closed
    proxy.fault = Fault("down")                  # the port refuses connections
    proxy.fault = Fault("slow", delay=3)         # forwarded after a pause
    proxy.fault = Fault("chatty")                # forwarded with llama.cpp's `ignore_eos`: the
                                                 # model talks until its `max_tokens`
    proxy.fault = None                           # forwarded as is

One request a connection: each is sent upstream with `Connection: close` and the answer relayed
until the model server closes it, so the bytes a client sees are the server's own, cut where a
fault says.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Literal

__all__ = ["Fault", "FaultProxy"]


@dataclass(frozen=True)
class Fault:
    kind: Literal["status", "cut", "down", "slow", "chatty"]
    status: int = 500
    body: dict[str, object] | None = None
    after_bytes: int = 0  # "cut": body bytes relayed before the connection is closed
    delay: float = 0.0


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.requests = 0
        self._fault: Fault | None = None
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def fault(self) -> Fault | None:
        return self._fault

    @fault.setter
    def fault(self, fault: Fault | None) -> None:
        was_down = self._fault is not None and self._fault.kind == "down"
        self._fault = fault
        if fault is not None and fault.kind == "down":
            self._call(self._close())
        elif was_down:
            self._call(self._listen(self._port))

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen(0))
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            lines = head.decode("latin-1").split("\r\n")
            kept = [lines[0]]
            for line in lines[1:]:
                name = line.split(":", 1)[0].strip().lower()
                if name == "content-length":
                    length = int(line.split(":", 1)[1])
                if name and name not in ("connection", "content-length"):
                    kept.append(line)
            body = await reader.readexactly(length)
            if self._fault is not None and self._fault.kind == "chatty" and body:
                body = json.dumps({**json.loads(body), "ignore_eos": True}).encode()
            kept.append(f"Content-Length: {len(body)}")
            self.requests += 1
            fault = self._fault
            if fault is not None and fault.kind == "status":
                await self._answer(writer, fault)
                return
            if fault is not None and fault.kind == "slow":
                await asyncio.sleep(fault.delay)
            request = ("\r\n".join(kept) + "\r\nConnection: close\r\n\r\n").encode() + body
            await self._relay(writer, request, fault)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, fault: Fault) -> None:
        body = json.dumps(
            fault.body or {"error": {"message": f"injected {fault.status}", "type": "test"}}
        ).encode()
        writer.write(
            f"HTTP/1.1 {fault.status} Injected\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    async def _relay(
        self, writer: asyncio.StreamWriter, request: bytes, fault: Fault | None
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        try:
            up_writer.write(request)
            await up_writer.drain()
            head = await up_reader.readuntil(b"\r\n\r\n")
            writer.write(head)
            budget = fault.after_bytes if fault is not None and fault.kind == "cut" else None
            while chunk := await up_reader.read(4096):
                if budget is not None:
                    chunk = chunk[:budget]
                    budget -= len(chunk)
                writer.write(chunk)
                await writer.drain()
                if budget is not None and budget <= 0:
                    return  # the model server "dies" mid-answer: the socket just closes
        finally:
            up_writer.close()
