"""Walking an error's causes: the one way the code base reads what an error came from."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["causes"]


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it was raised from (or while handling), each once; an error wrapping a
    driver's own (SQLAlchemy's `.orig`) is followed by it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and id(orig) not in seen:
            seen.add(id(orig))
            yield orig
        current = current.__cause__ or current.__context__
