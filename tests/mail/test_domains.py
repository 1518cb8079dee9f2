"""Organizational domains and alignment."""

from __future__ import annotations

import pytest

from kennel.mail.domains import aligned, organizational_domain


@pytest.mark.parametrize(
    ("domain", "organization"),
    [
        ("example.com", "example.com"),
        ("a.b.example.com", "example.com"),
        ("Mail.Example.COM.", "example.com"),
        ("a.b.example.co.uk", "example.co.uk"),
        ("co.uk", "co.uk"),
        ("alice.github.io", "alice.github.io"),  # a private suffix: each user is their own
        ("kennel.test", "kennel.test"),  # not on the list: the TLD alone is the suffix
        ("mx.kennel.test", "kennel.test"),
        ("x.city.kawasaki.jp", "city.kawasaki.jp"),  # an exception to *.kawasaki.jp
        ("a.b.kawasaki.jp", "a.b.kawasaki.jp"),  # the wildcard
        ("com", "com"),
    ],
)
def test_organizational_domain(domain: str, organization: str) -> None:
    assert organizational_domain(domain) == organization


@pytest.mark.parametrize(
    ("domain", "from_domain", "strict", "expected"),
    [
        ("example.com", "example.com", True, True),
        ("mail.example.com", "example.com", False, True),
        ("mail.example.com", "example.com", True, False),
        ("example.com.evil.test", "example.com", False, False),
        ("bob.github.io", "alice.github.io", False, False),
        ("evil.test", "kennel.test", False, False),
    ],
)
def test_aligned(domain: str, from_domain: str, strict: bool, expected: bool) -> None:
    assert aligned(domain, from_domain, strict=strict) is expected
