"""What a webhook or an MCP server may dial: URL rules and the addresses that are blocked.

An address is blocked when it falls in one of these ranges (the union of what Svix's
filter and Stripe's Smokescreen refuse):

| range | why |
| --- | --- |
| IPv6 that carries an IPv4 address (see below) | judged by the IPv4 address it carries |
| 0.0.0.0/8 | "this network"; 0.0.0.0 reaches the local host on Linux |
| 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 | private (RFC 1918) |
| 100.64.0.0/10 | carrier-grade NAT (RFC 6598) |
| 127.0.0.0/8 | loopback |
| 169.254.0.0/16 | link-local, including cloud metadata at 169.254.169.254 |
| 192.0.0.0/24 | IETF protocol assignments |
| 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 | documentation |
| 192.88.99.0/24 | 6to4 relay anycast |
| 198.18.0.0/15 | benchmarking |
| 224.0.0.0/4 | multicast |
| 240.0.0.0/4 | reserved, including the broadcast address 255.255.255.255 |
| ::/128, ::1/128 | unspecified, loopback |
| 64:ff9b:1::/48 | local-use NAT64 (its IPv4 cannot be located reliably) |
| 100::/64 | discard-only |
| 2001::/32, 2001::/23 | Teredo tunnels, IETF protocol assignments |
| 2001:db8::/32, 3fff::/20 | documentation |
| fc00::/7, fec0::/10, fe80::/10 | unique-local, site-local, link-local |
| ff00::/8 | multicast |
| any IPv6 outside 2000::/3 | not global unicast |

The IPv6 forms that carry an IPv4 address: `::ffff:0:0/96` (mapped), `::ffff:0:0:0/96`
(translated), `::/96` (compatible), `64:ff9b::/96` (NAT64) and `2002::/16` (6to4).

Operator-named networks (`allowed_networks`) lift the block for addresses inside them
(an IPv6 address with an IPv4 inside is also allowed when that IPv4 is); `allow_private`
lifts every check, including the https-only rule.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from kennel.core.parsers import IPNetwork

__all__ = [
    "MAX_URL_LENGTH",
    "BlockedAddressError",
    "IPAddress",
    "IPNetwork",
    "Resolver",
    "Target",
    "WebhookUrlError",
    "blocked_reason",
    "check_url",
    "check_url_resolving",
    "is_blocked",
    "parse_target",
    "resolve_allowed",
    "system_resolver",
]

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Resolves (host, port) to address strings; tests pass a stub instead of DNS."""


class WebhookUrlError(ValueError):
    """A webhook URL that may not be used; the message is a sentence for the user."""


class BlockedAddressError(WebhookUrlError):
    """The URL's host is, or resolves to, an address webhooks may not reach."""

    def __init__(self, message: str, *, address: IPAddress, reason: str) -> None:
        super().__init__(message)
        self.address = address
        self.reason = reason


def _table(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), reason) for cidr, reason in rows)


_BLOCKED_V4 = _table(
    ("0.0.0.0/8", "a 'this network' address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.169.254/32", "the cloud metadata address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
)
_BLOCKED_V6 = _table(
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo tunnel address"),
    ("2001:db8::/32", "a documentation address"),
    ("2001::/23", "an IETF protocol address"),
    ("3fff::/20", "a documentation address"),
    ("fc00::/7", "a unique-local address"),
    ("fec0::/10", "a site-local address"),
    ("fe80::/10", "a link-local address"),
    ("ff00::/8", "a multicast address"),
)
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, for the forms that carry one."""
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    if any(address in net for net in (_MAPPED, _TRANSLATED, _COMPATIBLE, _NAT64)):
        # ::1 and :: sit inside ::/96 too; their own rows name them better.
        if address in _COMPATIBLE and int(address) <= 1:
            return None
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def blocked_reason(address: IPAddress | str) -> str | None:
    """Why webhooks may not reach `address` ("a loopback address"), or None when they may."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv4Address):
        return next((reason for net, reason in _BLOCKED_V4 if ip in net), None)
    inner = _embedded_ipv4(ip)
    if inner is not None:
        reason = blocked_reason(inner)
        return None if reason is None else f"an IPv6 form of {inner}, {reason}"
    found = next((reason for net, reason in _BLOCKED_V6 if ip in net), None)
    if found is None and ip not in _GLOBAL_UNICAST_V6:
        return "a reserved IPv6 address"
    return found


def is_blocked(address: IPAddress | str) -> bool:
    """Whether webhooks may not reach `address` without an operator's allowance."""
    return blocked_reason(address) is not None


def _refusal(
    ip: IPAddress, *, allow_private: bool, allowed_networks: Sequence[IPNetwork]
) -> str | None:
    """Why `ip` is refused under these settings, or None when it may be dialled."""
    if allow_private:
        return None
    reason = blocked_reason(ip)
    if reason is None:
        return None
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_ipv4(ip)) is not None:
        candidates.append(inner)
    # `in` is simply False across IP versions, so mixed lists need no sorting out.
    if any(candidate in net for candidate in candidates for net in allowed_networks):
        return None
    return reason


# Hosts are IDNA-encoded by httpx before we look at them; "_" appears in real DNS names.
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
_NUMBER_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_AUTHORITY = re.compile(r"[a-z][a-z0-9+.-]*://([^/?#]*)", re.IGNORECASE)


def _loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Read `host` as inet_aton and browsers do (2130706433, 0177.0.0.1, 0x7f.1, 127.1)."""
    if not host.isascii():
        return None  # int() would read full-width and other Unicode digits
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        if part.startswith("0x"):
            digits, base = part[2:] or "0", 16
        elif len(part) > 1 and part.startswith("0"):
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        try:
            numbers.append(int(digits, base))
        except ValueError:
            return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last + sum(n << (8 * (3 - i)) for i, n in enumerate(head))
    return ipaddress.IPv4Address(value)


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL taken apart: what to resolve, where to connect, what to say in Host."""

    url: httpx.URL
    host: str  # lower case, IDNA-encoded, without IPv6 brackets
    port: int
    ip: IPAddress | None  # set when the host is an IP literal


def parse_target(url: str, *, allow_private: bool) -> Target:
    """Check the URL's shape (not its addresses) and take it apart; raises WebhookUrlError."""
    if not isinstance(url, str) or not url:
        raise WebhookUrlError("The URL must be a non-empty string.")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"The URL must be at most {MAX_URL_LENGTH:,} characters long.")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise WebhookUrlError("The URL must not contain spaces or control characters.")
    # Parsers disagree on "\" (WHATWG reads it as "/", httpx as data): refuse it outright.
    if "\\" in url:
        raise WebhookUrlError("The URL must not contain backslashes.")
    authority = _AUTHORITY.match(url)
    if authority is None:
        raise WebhookUrlError("The URL must be absolute, like https://example.com/hooks.")
    if "@" in authority.group(1):
        raise WebhookUrlError("The URL must not contain a user name or password.")
    schemes = ("https", "http") if allow_private else ("https",)
    scheme = url.split(":", 1)[0].lower()
    if scheme not in schemes:
        raise WebhookUrlError(
            "The URL must use https." if not allow_private else "The URL must use http or https."
        )
    raw_host = authority.group(1).rsplit(":", 1)[0] if "]" not in authority.group(1) else ""
    if raw_host:
        _refuse_unusual_ipv4(raw_host.lower(), allow_private=allow_private)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise WebhookUrlError(f"The URL is not valid: {exc}.") from None
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise WebhookUrlError("The URL must name a host, like https://example.com/hooks.")
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise WebhookUrlError("The URL's port must be between 1 and 65535.")
    ip: IPAddress | None = None
    if ":" in host:
        if "%" in host:
            raise WebhookUrlError("The URL's IPv6 address must not carry a zone (%).")
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            raise WebhookUrlError(f"The URL's host [{host}] is not a valid IPv6 address.") from None
    elif _NUMBER_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
        # Again on httpx's host: IDNA maps "127。0。0。1" to an address the first look missed.
        _refuse_unusual_ipv4(host, allow_private=allow_private)
        ip = ipaddress.IPv4Address(host)
    elif not _HOST_NAME.fullmatch(host):
        raise WebhookUrlError(f"The URL's host {host!r} is not a valid host name.")
    return Target(url=parsed, host=host, port=port, ip=ip)


def _refuse_unusual_ipv4(host: str, *, allow_private: bool) -> None:
    """Refuse IPv4 written any way but a.b.c.d: resolvers would read 2130706433 as 127.0.0.1."""
    if not _NUMBER_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
        return  # a host name: a name's last label is never all digits
    ip = _loose_ipv4(host)
    if ip is None:
        raise WebhookUrlError(f"The URL's host {host} is not a valid IPv4 address.")
    if str(ip) == host:
        return
    reason = None if allow_private else blocked_reason(ip)
    if reason is not None:
        raise BlockedAddressError(
            f"The URL's host {host} stands for {ip}, {reason}, which webhooks may not reach.",
            address=ip,
            reason=reason,
        )
    raise WebhookUrlError(f"The URL's host {host} stands for {ip}; write the address as {ip}.")


def _blocked_error(host: str, ip: IPAddress, reason: str, *, resolved: bool) -> BlockedAddressError:
    said = f"resolves to {ip}," if resolved else "is"
    return BlockedAddressError(
        f"The URL's host {host} {said} {reason}, which webhooks may not reach.",
        address=ip,
        reason=reason,
    )


def _checked_target(
    url: str, *, allow_private: bool, allowed_networks: Sequence[IPNetwork]
) -> Target:
    target = parse_target(url, allow_private=allow_private)
    if target.ip is not None:
        reason = _refusal(target.ip, allow_private=allow_private, allowed_networks=allowed_networks)
        if reason is not None:
            raise _blocked_error(target.host, target.ip, reason, resolved=False)
    return target


def check_url(url: str, *, allow_private: bool, allowed_networks: Sequence[IPNetwork] = ()) -> str:
    """Validate a webhook URL without DNS (an IP-literal host is checked); returns it unchanged."""
    _checked_target(url, allow_private=allow_private, allowed_networks=allowed_networks)
    return url


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver (getaddrinfo), TCP addresses in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_allowed(
    host: str,
    port: int,
    *,
    allow_private: bool,
    allowed_networks: Sequence[IPNetwork] = (),
    resolver: Resolver | None = None,
) -> list[str]:
    """The addresses `host` resolves to, refusing the host if ANY of them is blocked.

    Refusing on any (as Smokescreen does) rather than dropping the bad ones means a name
    that mixes public and internal records cannot be used to reach inside by luck of order.
    An IP-literal host (canonical form, as parse_target leaves it) is checked, not resolved.
    """
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        answers: Sequence[str] = [str(literal)]
    else:
        try:
            answers = await (resolver or system_resolver)(host, port)
        except (OSError, UnicodeError):
            raise WebhookUrlError(f"The URL's host {host} could not be resolved.") from None
    addresses: list[str] = []
    for answer in answers:
        try:
            # A zone (fe80::1%eth0) means nothing to the checks, and httpx URLs cannot carry one.
            ip = ipaddress.ip_address(answer.split("%", 1)[0])
        except ValueError:
            raise WebhookUrlError(f"The URL's host {host} resolved to {answer!r}.") from None
        reason = _refusal(ip, allow_private=allow_private, allowed_networks=allowed_networks)
        if reason is not None:
            raise _blocked_error(host, ip, reason, resolved=literal is None)
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise WebhookUrlError(f"The URL's host {host} could not be resolved.")
    return addresses


async def check_url_resolving(
    url: str,
    *,
    allow_private: bool,
    allowed_networks: Sequence[IPNetwork] = (),
    resolver: Resolver | None = None,
    timeout: float = 10.0,
) -> str:
    """check_url, then resolve the host (within `timeout`) and refuse it if any address is blocked.

    A host that does not resolve is refused too: the user most likely mistyped it.
    """
    target = _checked_target(url, allow_private=allow_private, allowed_networks=allowed_networks)
    if allow_private or target.ip is not None:
        return url  # every check is lifted, or there is nothing to resolve
    try:
        async with asyncio.timeout(timeout):
            await resolve_allowed(
                target.host,
                target.port,
                allow_private=allow_private,
                allowed_networks=allowed_networks,
                resolver=resolver,
            )
    except TimeoutError:
        raise WebhookUrlError(
            f"The URL's host {target.host} could not be resolved in {timeout:g} s."
        ) from None
    return url
