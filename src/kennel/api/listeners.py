"""The sockets `kennel serve` listens on, bound before anything else starts.

Binding first makes a busy port one line and an exit within a second, instead of what it was:
migrations, DBOS and the start-up block ("ready") first, then uvicorn's bind error (HTTP), or
a traceback from the lifespan (SMTP). The bound sockets are handed to uvicorn and to the SMTP
listener, so no other program can take the port in between; they listen from then on, and a
connection made during start-up waits to be answered instead of being refused.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from kennel.core.settings import Settings

__all__ = ["Listeners", "PortUnavailable", "bind_address", "bind_listeners"]


class PortUnavailable(Exception):
    """A port cannot be listened on; the message is one line naming it and its setting."""


@dataclass(frozen=True)
class Listeners:
    """Listening sockets: uvicorn's, and the SMTP listener's (None: off)."""

    http: list[socket.socket]
    smtp: list[socket.socket] | None


_BACKLOG = 2048  # uvicorn's default; it and asyncio listen again with their own

# What to change, by the kind of failure: the port, or the address.
_HTTP_SETTING = ("set KENNEL_PORT or --port to a free one", "KENNEL_HOST or --host")
_SMTP_SETTING = (
    "set KENNEL_SMTP_PORT to a free one, or KENNEL_SMTP_ENABLED=false",
    "KENNEL_SMTP_HOST",
)


def bind_listeners(settings: Settings) -> Listeners:
    """Bind the HTTP port and, when the SMTP listener is on, its port; `PortUnavailable` if
    either cannot be had (nothing stays bound then)."""
    http = bind_address(settings.host, settings.port, what="HTTP", setting=_HTTP_SETTING)
    if not settings.smtp_enabled:
        return Listeners(http, None)
    try:
        smtp = bind_address(
            settings.smtp_host, settings.smtp_port, what="SMTP", setting=_SMTP_SETTING
        )
    except PortUnavailable:
        for sock in http:
            sock.close()
        raise
    return Listeners(http, smtp)


def bind_address(
    host: str, port: int, *, what: str, setting: tuple[str, str]
) -> list[socket.socket]:
    """One socket per address `host` names (`localhost`: IPv4 and IPv6), as asyncio's
    `create_server(host=...)` binds them, with the same options."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise PortUnavailable(
            f"cannot listen on {where} for {what}: {host!r} is no address of this machine "
            f"({exc.strerror}; {setting[1]})"
        ) from None
    sockets: list[socket.socket] = []
    chosen = port
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            # What asyncio and uvicorn set: a restart may bind while old connections linger
            # in TIME_WAIT; a port someone listens on is still refused.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], chosen, *address[2:]))
            chosen = sock.getsockname()[1]  # port 0 (any free one): the same on every address
            # Listening at once holds the port: two sockets with SO_REUSEADDR may both bind
            # it while neither listens (two servers starting together). Connections made
            # during start-up wait in the backlog until the server takes them.
            sock.listen(_BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise PortUnavailable(_reason(where, what, setting, exc)) from None
    return sockets


def _reason(where: str, what: str, setting: tuple[str, str], exc: OSError) -> str:
    port, host = setting
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {where} for {what}: the port is in use ({port})"
    if exc.errno == errno.EACCES:
        return (
            f"cannot listen on {where} for {what}: permission denied (ports below 1024 need "
            f"privileges; {port})"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where} for {what}: no such address on this machine ({host})"
    return f"cannot listen on {where} for {what}: {exc.strerror or exc}"
