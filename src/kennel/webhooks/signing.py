"""Standard Webhooks signatures: event ids, tokens, signing, and `verify` for receivers.

The key is the token's own UTF-8 bytes, not a base64-decoded secret: receivers using the
`standardwebhooks` package must write `Webhook(token.encode())`, since `Webhook(token)`
would base64-decode the string and get another key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

from kennel.core.ids import new_id

__all__ = [
    "TOKEN_PREFIX",
    "WebhookVerificationError",
    "new_event_id",
    "new_token",
    "signature_header",
    "verify",
    "webhook_headers",
]

TOKEN_PREFIX = "whk_"


class WebhookVerificationError(Exception):
    """A delivery whose signature or timestamp does not check out."""


def new_event_id() -> str:
    """A fresh event id, `msg_` and 26 base32 characters (time-ordered, 80 random bits)."""
    return new_id("msg")


def new_token() -> str:
    """A webhook token: `whk_` and 256 random bits, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def signature_header(event_id: str, timestamp: int, body: bytes, tokens: Sequence[str]) -> str:
    """`webhook-signature`: one `v1,<base64>` per token, space-separated (several in rotation)."""
    if not tokens or not all(tokens):
        raise ValueError("signing needs at least one token, and no empty ones")
    # The library signs text; our bodies are JSON, so UTF-8 round-trips them byte for byte.
    data = body.decode("utf-8")
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return " ".join(Webhook(token.encode()).sign(event_id, when, data) for token in tokens)


def webhook_headers(
    event_id: str, body: bytes, tokens: Sequence[str], *, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt (timestamp: now unless given)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(event_id, ts, body, tokens),
    }


def verify(token: str, headers: Mapping[str, str], body: bytes | str, tolerance: int = 300) -> None:
    """Check a delivery's signature and timestamp with the standard library alone.

    Header names are matched case-insensitively. Passes when any of the space-separated
    `v1` signatures matches; raises WebhookVerificationError otherwise, or when the
    timestamp is more than `tolerance` seconds from now (replays of old deliveries).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    event_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not (event_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not (stamp.isascii() and stamp.isdigit()):
        raise WebhookVerificationError("webhook-timestamp is not a number of seconds")
    if abs(time.time() - int(stamp)) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    payload = f"{event_id}.{stamp}.".encode() + (body.encode() if isinstance(body, str) else body)
    expected = hmac.digest(token.encode(), payload, hashlib.sha256)
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if hmac.compare_digest(candidate, expected):
            return
    raise WebhookVerificationError("no matching signature")
