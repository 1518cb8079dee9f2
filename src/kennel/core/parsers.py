"""Setting values that a domain also reads: networks, a retry schedule, a time zone, a relay.

Settings are the lowest module but one: it parses with these, which import nothing of
Kennel, so that loading the settings loads no domain (nor `standardwebhooks`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "IPNetwork",
    "parse_host_port",
    "parse_networks",
    "parse_retry_schedule",
    "parse_timezone",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs from a setting ("10.0.0.0/8, fd00::/8"); host bits are dropped, as in 10.1.2.3/8."""
    items = text.split(",") if isinstance(text, str) else list(text)
    networks = []
    for item in (part.strip() for part in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not a network in CIDR form, like 10.0.0.0/8") from None
    return tuple(networks)


# Svix's default (see `webhooks.retries`): at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ENTRY = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)", re.IGNORECASE)


def parse_retry_schedule(text: str) -> tuple[float, ...]:
    """Delays from a setting: "0,5,300" or "0, 5s, 5m, 30m, 2h" (seconds unless a unit is given)."""
    entries = [part.strip() for part in text.split(",")]
    if entries == [""]:
        raise ValueError("the retry schedule is empty; give at least one delay, like 0,5,300")
    delays = []
    for entry in entries:
        match = _ENTRY.fullmatch(entry)
        if match is None:
            raise ValueError(
                f"retry schedule entry {entry!r} is not a delay: write seconds (300) "
                "or a number with s, m, h or d (5m), separated by commas"
            )
        delays.append(float(match.group(1)) * _UNITS[match.group(2).lower()])
    return tuple(delays)


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA zone of that name; ValueError for anything else."""
    if not name or len(name) > 64 or name not in _zones():
        raise ValueError(f"{name[:64]!r} is not an IANA time zone (such as Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (such as Europe/Berlin)") from None


def _zones() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = available_timezones() | {"UTC"}
    return _ZONES


_ZONES: set[str] | None = None


def parse_host_port(address: str, default_port: int) -> tuple[str, int]:
    """`host:port`, `host` (the default port) or `[IPv6]:port`; ValueError for anything else."""
    address = address.strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
    elif address.count(":") > 1:
        raise ValueError(f"put an IPv6 relay address in brackets: {address!r}")
    else:
        host, _, port = address.partition(":")
    if not host or (port and not port.isdigit()):
        raise ValueError(f"not a relay address (host:port): {address!r}")
    number = int(port) if port else default_port
    if not 0 < number < 65536:
        raise ValueError(f"not a port: {number}")
    return host, number
