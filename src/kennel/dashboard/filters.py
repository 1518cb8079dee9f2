"""The search and filter forms of the workers list and a worker's task list (plain GET forms).

Query parameters are forgiving, as addresses people type or keep are: an unknown status or
trigger is no filter rather than an error page, and a search text is cut to a sane length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args
from urllib.parse import urlencode

from kennel.tasks.schemas import TaskStatus, TriggeredBy

__all__ = ["TASK_STATUSES", "TRIGGERS", "VISIBILITIES", "TaskSearch", "WorkerSearch"]

TASK_STATUSES: tuple[str, ...] = get_args(TaskStatus)
TRIGGERS: tuple[str, ...] = get_args(TriggeredBy)
VISIBILITIES = ("public", "private")
_MAX_SEARCH = 200


def _text(raw: str | None) -> str | None:
    text = (raw or "").strip()[:_MAX_SEARCH]
    return text or None


def _one_of(raw: str | None, allowed: tuple[str, ...]) -> str | None:
    return raw if raw in allowed else None


@dataclass(frozen=True, slots=True)
class WorkerSearch:
    q: str | None
    visibility: str | None

    @classmethod
    def of(cls, q: str | None, visibility: str | None) -> WorkerSearch:
        return cls(_text(q), _one_of(visibility, VISIBILITIES))

    @property
    def active(self) -> bool:
        return bool(self.q or self.visibility)

    @property
    def query(self) -> str:
        """The filters as a query string for the pager's links (`&q=...`), or ''."""
        pairs = {"q": self.q, "visibility": self.visibility}
        return _query(pairs)


@dataclass(frozen=True, slots=True)
class TaskSearch:
    q: str | None
    status: str | None
    trigger: str | None

    @classmethod
    def of(cls, q: str | None, status: str | None, trigger: str | None) -> TaskSearch:
        return cls(_text(q), _one_of(status, TASK_STATUSES), _one_of(trigger, TRIGGERS))

    @property
    def active(self) -> bool:
        return bool(self.q or self.status or self.trigger)

    @property
    def query(self) -> str:
        return _query({"q": self.q, "status": self.status, "trigger": self.trigger})


def _query(pairs: dict[str, str | None]) -> str:
    kept = {name: value for name, value in pairs.items() if value}
    return "&" + urlencode(kept) if kept else ""
