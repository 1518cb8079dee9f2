"""Opaque, URL-safe, prefixed ids that sort by creation time."""

from __future__ import annotations

import hashlib
import os
import time

__all__ = ["PREFIXES", "derived_id", "is_valid_id", "new_id"]

PREFIXES = frozenset(
    {"wrk", "tsk", "trn", "sch", "whx", "org", "usr", "key", "fil", "msg", "run", "eml"}
)

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_BODY_LEN = 26


def new_id(prefix: str) -> str:
    """`<prefix>_` followed by 48 bits of milliseconds and 80 random bits, base32."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode(value)}"


def derived_id(prefix: str, key: str) -> str:
    """The same id every time for the same key (a hash, so it does not sort by time): for rows
    a step may write twice when it runs again after a crash."""
    value = int.from_bytes(hashlib.sha256(key.encode()).digest(), "big") >> (256 - 5 * _BODY_LEN)
    return f"{prefix}_{_encode(value)}"


def _encode(value: int) -> str:
    chars = []
    for _ in range(_BODY_LEN):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def is_valid_id(value: str, prefix: str) -> bool:
    """Whether `value` has the shape of an id Kennel issues with that prefix."""
    head, sep, body = value.partition("_")
    return bool(sep) and head == prefix and len(body) == _BODY_LEN and set(body) <= set(_ALPHABET)
