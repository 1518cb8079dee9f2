"""Organizational domains (RFC 7489 3.2) from the Public Suffix List, for DMARC-style alignment.

The list is the copy authheaders ships (a declared dependency, and fresher than the one in
publicsuffix2). publicsuffix2's own lookup is not used: for a name whose TLD is not on the list
(`kennel.test`, `corp.internal`) it gives the bare TLD, so any two such names would "align".
"""

from __future__ import annotations

import functools
import importlib.resources

__all__ = ["aligned", "organizational_domain"]


@functools.cache
def _rules() -> tuple[frozenset[str], frozenset[str]]:
    """(rules, exceptions) with wildcards kept as `*.x`, in both Unicode and A-label form."""
    text = (importlib.resources.files("authheaders") / "public_suffix_list.txt").read_text("utf-8")
    rules: set[str] = set()
    exceptions: set[str] = set()
    for line in text.splitlines():
        rule = line.strip().split(" ")[0].lower()
        if not rule or rule.startswith("//"):
            continue
        target = exceptions if rule.startswith("!") else rules
        rule = rule.removeprefix("!")
        target.add(rule)
        target.add(_a_labels(rule))
    return frozenset(rules), frozenset(exceptions)


def _a_labels(name: str) -> str:
    try:
        return ".".join(
            label if label == "*" else label.encode("idna").decode() for label in name.split(".")
        )
    except UnicodeError:
        return name


@functools.lru_cache(maxsize=4096)
def organizational_domain(domain: str) -> str:
    """The public suffix plus one label: `a.b.example.co.uk` -> `example.co.uk`."""
    labels = domain.lower().rstrip(".").split(".")
    rules, exceptions = _rules()
    suffix = 1  # the list's implicit rule "*": an unlisted TLD is a public suffix
    for i in range(len(labels)):
        name = ".".join(labels[i:])
        if name in exceptions:
            suffix = len(labels) - i - 1
            break
        if name in rules or "*." + ".".join(labels[i + 1 :]) in rules:
            suffix = len(labels) - i
            break
    return ".".join(labels[-(suffix + 1) :]) if len(labels) > suffix else ".".join(labels)


def aligned(domain: str, from_domain: str, *, strict: bool = False) -> bool:
    """Whether an authenticated `domain` speaks for `from_domain` (relaxed: same organization)."""
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if strict or domain == from_domain:
        return domain == from_domain
    return organizational_domain(domain) == organizational_domain(from_domain)
