"""One delivery attempt, dialling only an address that passed the check at send time.

The host is resolved here, every answer is checked (see addresses.py), and the request
goes to the checked IP itself: the URL is rewritten to that IP while the Host header and
the TLS server name (httpcore's `sni_hostname` extension, which the ssl module also uses
to verify the certificate) stay the original host. httpx never resolves the name again,
so a DNS answer that changes between check and connect (DNS rebinding) changes nothing.

Each attempt gets its own connection pool: a pooled connection is keyed by IP, and one
TLS-verified for one webhook's host must not carry another webhook's request.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from kennel.core.addresses import (
    BlockedAddressError,
    IPNetwork,
    Resolver,
    Target,
    WebhookUrlError,
    parse_target,
    resolve_allowed,
)
from kennel.core.causes import causes
from kennel.webhooks.retries import parse_retry_after

__all__ = ["EXCERPT_BYTES", "Attempt", "deliver"]

EXCERPT_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one POST went: `ok` for a 2xx, else `status` and/or a readable `error`."""

    ok: bool
    status: int | None
    error: str | None
    response_excerpt: str
    duration_ms: int
    retry_after_seconds: float | None
    gone: bool


async def deliver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    allow_private: bool,
    allowed_networks: Sequence[IPNetwork] = (),
    resolver: Resolver | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Attempt:
    """POST `body` to `url` once, within `timeout` seconds in all; never raises for the network.

    No redirect is followed (a 3xx is a failed attempt), proxy variables are ignored, and at
    most EXCERPT_BYTES of the answer are read. A passed `transport` is used and left open.
    """
    started = time.monotonic()
    deadline = asyncio.get_running_loop().time() + timeout
    client = httpx.AsyncClient(
        transport=transport or _new_transport(),
        trust_env=False,
        follow_redirects=False,
        timeout=timeout,
    )
    try:
        try:
            async with asyncio.timeout_at(deadline):
                target = parse_target(url, allow_private=allow_private)
                addresses = await resolve_allowed(
                    target.host,
                    target.port,
                    allow_private=allow_private,
                    allowed_networks=allowed_networks,
                    resolver=resolver,
                )
                response = await _post(client, target, addresses, body, headers)
        except BlockedAddressError as exc:
            return _failed(started, f"address {exc.address} is not allowed ({exc.reason})")
        except WebhookUrlError as exc:
            return _failed(started, str(exc))
        except (TimeoutError, httpx.TimeoutException):
            return _failed(started, f"timed out after {timeout:g} s")
        except _Unreachable as exc:
            return _failed(started, str(exc))
        except httpx.HTTPError as exc:
            return _failed(started, _describe(exc))
        excerpt = await _read_excerpt(response, deadline)
    finally:
        if transport is None:
            await client.aclose()
    return Attempt(
        ok=response.is_success,
        status=response.status_code,
        error=None,
        response_excerpt=excerpt,
        duration_ms=_elapsed_ms(started),
        retry_after_seconds=parse_retry_after(response.headers.get("retry-after")),
        gone=response.status_code == 410,
    )


class _Unreachable(Exception):
    """No checked address could be connected to; the message says why for each."""


async def _post(
    client: httpx.AsyncClient,
    target: Target,
    addresses: Sequence[str],
    body: bytes,
    headers: Mapping[str, str],
) -> httpx.Response:
    """Send to the checked addresses in turn until one takes the connection."""
    sent = httpx.Headers(headers)
    sent.setdefault("accept-encoding", "identity")  # 1 KiB read must mean 1 KiB on the wire
    sent["host"] = target.url.netloc.decode("ascii")
    extensions = {}
    if target.url.scheme == "https" and target.ip is None:
        extensions["sni_hostname"] = target.host.rstrip(".")
    failures: list[tuple[str, httpx.ConnectError]] = []
    for address in addresses:
        request = client.build_request(
            "POST",
            target.url.copy_with(host=address),
            content=body,
            headers=sent,
            extensions=extensions,
        )
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            failures.append((address, exc))
    if len(failures) == 1:
        raise _Unreachable(_describe(failures[0][1]))
    raise _Unreachable("; ".join(f"{address}: {_describe(exc)}" for address, exc in failures))


async def _read_excerpt(response: httpx.Response, deadline: float) -> str:
    """The first EXCERPT_BYTES of the answer; what came before the deadline, if it ran out."""
    if response.is_stream_consumed:  # a transport that answered from memory (tests' mocks)
        await response.aclose()
        return _decode(response.content)
    buffer = bytearray()
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in response.aiter_raw():
                buffer += chunk
                if len(buffer) >= EXCERPT_BYTES:
                    break  # stop reading: the rest is never downloaded
    except (TimeoutError, httpx.HTTPError):
        pass  # the status line is the answer; the excerpt is only a courtesy to the log
    finally:
        await response.aclose()
    return _decode(bytes(buffer))


def _decode(data: bytes) -> str:
    # Not final: a character cut at the 1 KiB boundary is dropped, not shown as U+FFFD.
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data[:EXCERPT_BYTES])


def _describe(exc: httpx.HTTPError) -> str:
    """A short, readable reason for a transport failure."""
    for cause in causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate rejected: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[:1].lower() + cause.strerror[1:]
    if isinstance(exc, httpx.RemoteProtocolError) and "without sending" in str(exc):
        return "the server closed the connection without answering"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"invalid HTTP answer: {exc}"
    return str(exc) or type(exc).__name__


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds; build it once, not per attempt.
    return httpx.create_ssl_context(trust_env=False)


def _new_transport() -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(verify=_ssl_context(), trust_env=False, retries=0)


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _failed(started: float, error: str) -> Attempt:
    return Attempt(
        ok=False,
        status=None,
        error=error,
        response_excerpt="",
        duration_ms=_elapsed_ms(started),
        retry_after_seconds=None,
        gone=False,
    )
