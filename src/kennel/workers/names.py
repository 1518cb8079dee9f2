"""Dog-themed default titles ("Patient Beagle") and the e-mail local parts derived from them."""

from __future__ import annotations

import re
import secrets

__all__ = ["dog_name", "email_local_part"]

_ADJECTIVES = (
    "Patient", "Loyal", "Curious", "Brave", "Gentle", "Clever", "Eager", "Happy", "Noble",
    "Playful", "Quiet", "Swift", "Steady", "Watchful", "Friendly", "Diligent", "Bold", "Calm",
    "Keen", "Merry", "Nimble", "Proud", "Sunny", "Tireless", "Wise", "Zesty", "Fluffy", "Jolly",
)  # fmt: skip
_BREEDS = (
    "Beagle", "Collie", "Corgi", "Dachshund", "Dalmatian", "Greyhound", "Husky", "Labrador",
    "Malamute", "Poodle", "Pug", "Retriever", "Samoyed", "Schnauzer", "Setter", "Sheepdog",
    "Shiba", "Spaniel", "Terrier", "Whippet", "Akita", "Basset", "Boxer", "Bulldog", "Pointer",
    "Newfoundland", "Vizsla", "Weimaraner", "Kelpie", "Papillon",
)  # fmt: skip
_NOT_LOCAL = re.compile(r"[^a-z0-9]+")


def dog_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)} {secrets.choice(_BREEDS)}"


def email_local_part(title: str) -> str:
    """A readable local part: the title slugged, then eight random hex characters."""
    slug = _NOT_LOCAL.sub("-", title.lower()).strip("-")[:40].rstrip("-") or "worker"
    return f"{slug}-{secrets.token_hex(4)}"
