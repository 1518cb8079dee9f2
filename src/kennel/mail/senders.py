"""Who wrote a message: the `From:` address Kennel may believe, by `KENNEL_MAIL_SENDER_AUTH` mode.

`trusted_from` says only that the address is genuine; whether it may use the worker is the
allow-list's question, asked by the caller (in `none` mode it is also the evidence).

| mode | `From:` is believed when |
| --- | --- |
| `none` | the envelope sender and `From:` are both allowed (listener behind your own MTA) |
| `upstream` | your MTA's A-R headers (its authserv-id, in place): DMARC or aligned DKIM pass |
| `verify` | a DKIM signature checked here passes aligned with `From:` (DMARC `adkim` applies) |

In place: an MTA puts its own headers on top, so everything below the `Received:` headers
your mail system adds was written by the sender, forged A-R headers included; only A-R
headers above the N-th `Received:` (`trusted_received`, default 1) are read. With
`trusted_received=0` every A-R header of the id is believed: only for an MTA that deletes
incoming ones of its id (RFC 8601 section 5). Alignment is relaxed (same organizational
domain, `domains.py`) unless the DMARC record says `adkim=s`. A DMARC `fail` overrides a
DKIM pass. SPF is not checked in `verify` mode: it needs pyspf, which resolves on its own (no
injectable resolver), and without SPF an aligned DKIM pass is exactly what DMARC accepts.
authheaders' DMARC is not used either: it cuts the From domain at its first hyphen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from enum import StrEnum
from typing import Any

import authres  # type: ignore[import-untyped]  # authres ships no type hints
import dkim  # no type hints: ignored in pyproject.toml's mypy overrides
import dns.exception
import dns.resolver

from kennel.mail.addresses import normalize_address
from kennel.mail.domains import aligned, organizational_domain
from kennel.mail.message import UnreadableMessage, sender_of

__all__ = [
    "AllowCheck",
    "SenderAuth",
    "SenderCheck",
    "TxtLookup",
    "check_none",
    "check_sender",
    "check_upstream",
    "check_verify",
    "resolve_txt",
]

AllowCheck = Callable[[str], Awaitable[bool]]
"""(address, lower case) -> may it use the worker?"""
TxtLookup = Callable[[str], str | None]
"""(DNS name, no trailing dot) -> its TXT record's text, None when there is none."""

_MAX_SIGNATURES = 8
_SINGLE_HEADERS = ("From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID")


class SenderAuth(StrEnum):
    NONE = "none"
    UPSTREAM = "upstream"
    VERIFY = "verify"


@dataclass(frozen=True, slots=True)
class SenderCheck:
    trusted_from: str | None  # lower case; None: the From: address is not believed
    reason: str

    @property
    def trusted(self) -> bool:
        return self.trusted_from is not None


async def check_sender(
    mode: SenderAuth,
    raw: bytes,
    envelope_from: str,
    *,
    is_allowed: AllowCheck,
    authserv_id: str | None = None,
    trusted_received: int = 1,
    txt: TxtLookup | None = None,
) -> SenderCheck:
    """The check of `mode`; `verify` runs in a thread, as its DNS look-ups block."""
    if mode is SenderAuth.NONE:
        return await check_none(raw, envelope_from, is_allowed)
    if mode is SenderAuth.UPSTREAM:
        if not authserv_id:
            raise ValueError("upstream sender authentication needs the MTA's authserv-id")
        return check_upstream(raw, authserv_id, trusted_received=trusted_received)
    return await asyncio.to_thread(check_verify, raw, txt=txt or resolve_txt)


async def check_none(raw: bytes, envelope_from: str, is_allowed: AllowCheck) -> SenderCheck:
    """Believe `From:` when it and the envelope sender are both allowed to use the worker."""
    message, address = _read(raw)
    if address is None:
        return SenderCheck(None, _unreadable(message))
    envelope = normalize_address(envelope_from)
    if not envelope:
        return SenderCheck(None, "empty envelope sender")
    if not await is_allowed(envelope):
        return SenderCheck(None, f"envelope sender {envelope} is not allowed")
    if address != envelope and not await is_allowed(address):
        return SenderCheck(None, f"From: {address} is not allowed")
    return SenderCheck(address, "envelope sender and From: are allowed (mode none)")


def check_upstream(raw: bytes, authserv_id: str, *, trusted_received: int = 1) -> SenderCheck:
    """Believe `From:` on the word of your own MTA's Authentication-Results headers."""
    message, address = _read(raw)
    if address is None:
        return SenderCheck(None, _unreadable(message))
    results = _trusted_results(message, authserv_id, trusted_received)
    if results is None:
        return SenderCheck(None, f"fewer than {trusted_received} Received: headers")
    if not results:
        return SenderCheck(None, f"no Authentication-Results of {authserv_id} in place")
    return _decide(message, address, results, adkim=None)


def check_verify(raw: bytes, *, txt: TxtLookup | None = None) -> SenderCheck:
    """Believe `From:` when a DKIM signature checked here passes aligned with it (blocks)."""
    lookup = txt or resolve_txt
    message, address = _read(raw)
    if address is None:
        return SenderCheck(None, _unreadable(message))
    domain = address.rpartition("@")[2]
    results = _dkim_results(raw, message, lookup)
    return _decide(message, address, results, adkim=_dmarc_adkim(domain, lookup))


def resolve_txt(name: str) -> str | None:
    """The TXT record at `name` through the system's resolver (dnspython), 5 s at most."""
    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=5)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    for record in answer:
        return b"".join(record.strings).decode("utf-8", "replace")
    return None


def _read(raw: bytes) -> tuple[EmailMessage, str | None]:
    """The message's headers and its one From: address, lower case (None when it has not one).

    Headers only: every check reads headers (DKIM hashes the raw bytes itself), and the body
    of a hostile message costs seconds to parse."""
    message = BytesHeaderParser(policy=policy.default).parsebytes(raw)
    try:
        return message, normalize_address(sender_of(message)[1])
    except UnreadableMessage:
        return message, None


def _unreadable(message: EmailMessage) -> str:
    return f"From: does not name one address ({len(message.get_all('From') or [])} headers)"


def _trusted_results(message: EmailMessage, authserv_id: str, received: int) -> list[Any] | None:
    """Results of `authserv_id`'s A-R headers above the `received`-th Received: header."""
    results: list[Any] = []
    seen = 0
    for name, value in message.items():
        if name.lower() == "received":
            seen += 1
            if seen == received:
                return results
        elif name.lower() == "authentication-results":
            header = _parse_ar(str(value))
            if header is not None and header.authserv_id.lower() == authserv_id.lower():
                results.extend(header.results)
    return results if received == 0 else None


def _parse_ar(value: str) -> Any:
    try:
        return authres.AuthenticationResultsHeader.parse_value(" ".join(value.split()))
    except Exception:  # authres raises its own SyntaxError and others on malformed text
        return None


def _decide(
    message: EmailMessage, address: str, results: list[Any], adkim: str | None
) -> SenderCheck:
    """DMARC pass for the From domain, else a DKIM pass aligned with it; DMARC fail is final."""
    for name in _SINGLE_HEADERS:
        if len(message.get_all(name) or []) > 1:  # a second copy above a signed one is unsigned
            return SenderCheck(None, f"more than one {name}: header")
    domain = address.rpartition("@")[2]
    dmarc = [r for r in results if r.method == "dmarc" and _property(r, "header", "from") == domain]
    if any(r.result == "pass" for r in dmarc):
        return SenderCheck(address, f"dmarc=pass header.from={domain}")
    if any(r.result == "fail" for r in dmarc):
        return SenderCheck(None, f"dmarc=fail header.from={domain}")
    for result in results:
        if result.method != "dkim" or result.result != "pass":
            continue
        signer = (
            _property(result, "header", "d") or _property(result, "header", "i").rpartition("@")[2]
        )
        if signer and aligned(signer, domain, strict=adkim == "s"):
            return SenderCheck(address, f"dkim=pass header.d={signer} aligned with {domain}")
    seen = "; ".join(
        f"{r.method}={r.result} header.d={_property(r, 'header', 'd')}"
        for r in results
        if r.method == "dkim"
    )
    return SenderCheck(
        None, f"no DMARC pass or aligned DKIM pass for {domain} ({seen or 'no DKIM'})"
    )


def _property(result: Any, kind: str, name: str) -> str:
    for prop in result.properties:
        if prop.type == kind and prop.name == name:
            return str(prop.value).lower()
    return ""


def _dkim_results(raw: bytes, message: EmailMessage, txt: TxtLookup) -> list[Any]:
    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:  # dkimpy's resolver shape
        record = txt(name.decode("ascii").rstrip("."))
        return record.encode() if record is not None else None

    count = min(len(message.get_all("DKIM-Signature") or []), _MAX_SIGNATURES)
    verifier = dkim.DKIM(raw)
    results = []
    for index in range(count):
        try:
            passed = bool(verifier.verify(idx=index, dnsfunc=dnsfunc))
        except Exception:  # dkimpy raises assorted errors on malformed signatures
            passed = False
        fields = verifier.signature_fields or {}
        if b"l" in fields:  # a body-length limit lets anyone append unsigned text
            passed = False
        signer = fields.get(b"d", b"").decode("ascii", "replace")
        results.append(
            authres.DKIMAuthenticationResult(result="pass" if passed else "fail", header_d=signer)
        )
    return results


def _dmarc_adkim(domain: str, txt: TxtLookup) -> str | None:
    """The `adkim` of the DMARC record for `domain` or its organization (`r` by default)."""
    for name in dict.fromkeys((domain, organizational_domain(domain))):
        try:
            record = txt(f"_dmarc.{name}")
        except dns.exception.DNSException:
            return "s"  # unknown policy: the stricter reading
        if record and record.strip().strip('"').lower().startswith("v=dmarc1"):
            tags = dict(tag.strip().partition("=")[::2] for tag in record.lower().split(";"))
            return tags.get("adkim", "r").strip()
    return None
