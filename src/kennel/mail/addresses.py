"""E-mail addresses as Kennel compares them, and plus-addressing."""

from __future__ import annotations

__all__ = ["normalize_address", "split_address"]


def normalize_address(address: str) -> str:
    """The form addresses are compared in: trimmed and lower case (RFC 5321 allows
    case-sensitive local parts; no mail system a person uses relies on it)."""
    return address.strip().lower()


def split_address(address: str) -> tuple[str, str | None, str]:
    """`Worker+Tag@Domain` -> `("worker", "tag", "domain")`; the tag is None without a `+`."""
    local, at, domain = normalize_address(address).rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an e-mail address: {address!r}")
    base, _, tag = local.partition("+")
    if not base:
        raise ValueError(f"no mailbox before the tag: {address!r}")
    return base, tag or None, domain
