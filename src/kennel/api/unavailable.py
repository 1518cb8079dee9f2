"""Faults that are not bugs: the database or the disk failing for a while.

A request that meets one is answered `503` with `Retry-After` and the cause in words
(`The database is busy`, `The disk is full`, `The database is unavailable`), not `500` "this
is a bug": nothing is wrong with the request, and the same request later may well succeed.
With an `Idempotency-Key`, sending it again is safe whatever had been written.
"""

from __future__ import annotations

from kennel.core.causes import transient_cause

__all__ = ["RETRY_AFTER_SECONDS", "transient_cause"]

RETRY_AFTER_SECONDS = 5
