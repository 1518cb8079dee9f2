"""The dashboard's Jinja2 environment: autoescaped templates, a few filters, one render call."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from kennel.dashboard.confirm import QUESTIONS
from kennel.dashboard.flash import current_flash

__all__ = ["TEMPLATES", "render"]

TEMPLATES = Path(__file__).parent / "templates"


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else ""


def _duration(ms: int | None) -> str:
    if not ms:
        return "0 s"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


def _size(size: int | None) -> str:
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def _credits(count: int) -> str:
    return f"{count} credit" if count == 1 else f"{count} credits"


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def _path_quote(value: str) -> str:
    """A path segment (or a workspace path, keeping its `/`) for a URL."""
    return quote(value, safe="/")


def _segment_quote(value: str) -> str:
    return quote(value, safe="")


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    # Every template is HTML: user text (titles, answers, file names) is escaped everywhere.
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# The confirm step's questions, for the forms' `data-confirm` (the routes ask the same).
_env.globals["QUESTIONS"] = QUESTIONS
_env.filters.update(
    when=_when,
    iso=_iso,
    duration=_duration,
    size=_size,
    credits=_credits,
    pretty_json=_pretty_json,
    path_quote=_path_quote,
    segment_quote=_segment_quote,
)


def render(
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The template `name` rendered with `context`, as an HTML response."""
    html = _env.get_template(name).render({"flash": current_flash(), **context})
    return HTMLResponse(html, status_code=status_code, headers=headers)
