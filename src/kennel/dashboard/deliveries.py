"""What a webhook delivery attempt sent, as the delivery log shows it: the request's headers
(the token masked) and its body.

The body is the event's, stored once and sent byte for byte by every attempt. The headers are
not stored: they are rebuilt here as `kennel.webhooks.workflows` sends them. The timestamp and
signature of an attempt are made as it is sent and not kept, so they are described, not shown.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import NamedTuple

from kennel import __version__
from kennel.webhooks.repository import ExecutionRow
from kennel.webhooks.signing import TOKEN_PREFIX

__all__ = ["MAX_BODY_SHOWN", "SentRequest", "sent_request"]

# A turn's answer can be long, and the log lists 50 attempts on a page that reloads after each
# turn: it shows this much of a body, and says when it cut it.
MAX_BODY_SHOWN = 10_000
# The token is a secret that signs every delivery: the log names it, never shows it.
MASKED_TOKEN = TOKEN_PREFIX + "•" * 8 + " (hidden: the webhook's token)"


class SentRequest(NamedTuple):
    headers: list[tuple[str, str]]
    body: str
    body_size: int
    cut: bool


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def sent_request(execution: ExecutionRow, body: str) -> SentRequest:
    """The POST of `execution`: its headers and (pretty-printed, maybe cut) body."""
    headers = [
        ("Content-Type", "application/json"),
        ("User-Agent", f"Kennel/{__version__}"),
        ("X-Handinger-Token", MASKED_TOKEN),
        ("webhook-id", execution.event_id),
        (
            "webhook-timestamp",
            f"≈ {_unix(execution.created_at)} (when the attempt began; the exact one is not kept)",
        ),
        ("webhook-signature", "v1,… (HMAC-SHA256 of id, timestamp and body with the token)"),
    ]
    shown = _pretty(body)
    return SentRequest(
        headers=headers,
        body=shown[:MAX_BODY_SHOWN],
        body_size=len(body.encode()),
        cut=len(shown) > MAX_BODY_SHOWN,
    )
