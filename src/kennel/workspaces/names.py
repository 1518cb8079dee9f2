"""The names a workspace accepts: one rule for every name that enters it, an upload's, the
agent's `write_file`'s, a file imported from disk:

- a relative path of at most 512 characters and 16 segments, `/` (or `\\`) between them;
- each segment at most 255 bytes of UTF-8 (what file systems allow), not `.` or `..`, not
  starting with `.` (hidden names are Kennel's own), valid Unicode, and without control
  characters or bidirectional overrides (`evil\\u202etxt.exe` shows as `evilexe.txt`);
- a file and a folder never share a name (`kennel.workspaces.store.Workspace.check_writable`).
"""

from __future__ import annotations

import mimetypes
import unicodedata

__all__ = [
    "MAX_PATH_CHARS",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_BYTES",
    "WorkspaceError",
    "clean_path",
    "media_type_of",
]

MAX_PATH_CHARS = 512
MAX_SEGMENT_BYTES = 255
MAX_SEGMENTS = 16
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class WorkspaceError(ValueError):
    """A name the workspace refuses, or a file over a limit; the message says why."""


def media_type_of(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def clean_path(name: str) -> str:
    """The relative POSIX path for `name`, or WorkspaceError saying what is wrong with it."""
    raw = name.replace("\\", "/").strip()
    shown = ascii(name) if len(name) <= 80 else ascii(name[:77]) + "…"
    if not raw or raw.startswith("/"):
        raise WorkspaceError(f"{shown} is not a relative file name")
    if len(raw) > MAX_PATH_CHARS:
        raise WorkspaceError(f"{shown} is longer than {MAX_PATH_CHARS} characters")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if not parts:
        raise WorkspaceError(f"{shown} is not a file name")
    if len(parts) > MAX_SEGMENTS:
        raise WorkspaceError(f"{shown} has more than {MAX_SEGMENTS} folders")
    for part in parts:
        _check_segment(part, shown)
    return "/".join(parts)


def _check_segment(part: str, shown: str) -> None:
    if part == "..":
        raise WorkspaceError(f"{shown} leaves the workspace ('..')")
    if part.startswith("."):
        raise WorkspaceError(f"{shown}: names starting with '.' are not allowed")
    try:
        size = len(part.encode("utf-8"))
    except UnicodeEncodeError:
        raise WorkspaceError(f"{shown} is not valid Unicode") from None
    if size > MAX_SEGMENT_BYTES:
        raise WorkspaceError(f"{shown}: a name is longer than {MAX_SEGMENT_BYTES} bytes")
    for char in part:
        if char in _BIDI or unicodedata.category(char) == "Cc":
            raise WorkspaceError(
                f"{shown} contains a control or text-direction character (U+{ord(char):04X})"
            )
