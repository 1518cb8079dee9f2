"""A worker's workspace: a folder of files that only that worker's tasks can reach.

One rule for every name that enters it, an upload's or the agent's `write_file`'s:

- a relative path of at most 512 characters and 16 segments, `/` (or `\\`) between them;
- each segment at most 255 bytes of UTF-8 (what file systems allow), not `.` or `..`, not
  starting with `.` (hidden names are Kennel's own), valid Unicode, and without control
  characters or bidirectional overrides (`evil\\u202etxt.exe` shows as `evilexe.txt`);
- a file and a folder never share a name: writing `a/b` when `a` is a file, or `a` when
  `a/` is a folder, is refused with a message that says which.

Writes are atomic: the bytes go to a temporary file with a short name in a hidden folder of
the workspace, which is then renamed into place; a failed write leaves no temporary behind.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["Workspace", "WorkspaceError", "WorkspaceFile", "has_workspace"]

MAX_PATH_CHARS = 512
MAX_SEGMENT_BYTES = 255
MAX_SEGMENTS = 16
_MAX_LISTED = 1000
_TEMPORARY = ".kennel-partial"
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class WorkspaceError(ValueError):
    """A name the workspace refuses, or a file over a limit; the message says why."""


@dataclass(frozen=True, slots=True)
class WorkspaceFile:
    path: str  # relative, POSIX separators
    size: int
    media_type: str


@functools.lru_cache(maxsize=8)
def _workspaces_folder(data_dir: Path) -> str:
    return os.path.join(data_dir.resolve(), "workspaces")


def has_workspace(data_dir: Path, worker_id: str) -> bool:
    """Whether the worker's folder exists: most workers have none, and every worker read asks
    (plain `os.path` here: building `Path`s cost more than the `stat`)."""
    return os.path.isdir(os.path.join(_workspaces_folder(data_dir), worker_id))


class Workspace:
    """Files of one worker under `<data dir>/workspaces/<worker id>/`."""

    def __init__(self, data_dir: Path, worker_id: str, *, max_file_bytes: int) -> None:
        # Worker ids are ours (letters, digits, "_"): only the data folder needs resolving.
        self.root = Path(_workspaces_folder(data_dir), worker_id)
        self.max_file_bytes = max_file_bytes

    @staticmethod
    def media_type_of(path: str) -> str:
        return mimetypes.guess_type(path)[0] or "application/octet-stream"

    @staticmethod
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

    def check_writable(self, relative: str) -> None:
        """WorkspaceError when writing `relative` (a clean path) would put a file where a
        folder is, or inside a file."""
        target = self.root
        parts = PurePosixPath(relative).parts
        for index, part in enumerate(parts):
            target = target / part
            last = index == len(parts) - 1
            if last and target.is_dir():
                raise WorkspaceError(f"{relative!r} is a folder; a file cannot take its name")
            if not last and target.exists() and not target.is_dir():
                folder = "/".join(parts[: index + 1])
                raise WorkspaceError(f"{folder!r} is a file, so {relative!r} cannot be made in it")

    def _resolve(self, relative: str) -> Path:
        target = (self.root / relative).resolve()
        if self.root not in target.parents:
            raise WorkspaceError(f"{relative!r} is outside the workspace")
        return target

    def write(self, name: str, data: bytes) -> WorkspaceFile:
        relative = self.clean_path(name)
        if len(data) > self.max_file_bytes:
            raise WorkspaceError(f"{relative!r} is larger than {self.max_file_bytes} bytes")
        self.check_writable(relative)
        target = self._resolve(relative)
        temporary_folder = self.root / _TEMPORARY
        temporary_folder.mkdir(parents=True, exist_ok=True)
        partial = temporary_folder / f"{secrets.token_hex(8)}.tmp"
        try:
            partial.write_bytes(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)  # readers never see half a file
        finally:
            partial.unlink(missing_ok=True)
        return WorkspaceFile(relative, len(data), self.media_type_of(relative))

    def read(self, name: str) -> bytes:
        target = self._resolve(self.clean_path(name))
        if not target.is_file():
            raise FileNotFoundError(name)
        return target.read_bytes()

    def file(self, name: str) -> tuple[Path, WorkspaceFile] | None:
        try:
            relative = self.clean_path(name)
            target = self._resolve(relative)
        except WorkspaceError:
            return None
        if not target.is_file():
            return None
        return target, WorkspaceFile(relative, target.stat().st_size, self.media_type_of(relative))

    def list(self) -> list[WorkspaceFile]:
        if not self.root.is_dir():
            return []
        found: list[WorkspaceFile] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                full = Path(dirpath) / filename
                relative = full.relative_to(self.root).as_posix()
                found.append(
                    WorkspaceFile(relative, full.stat().st_size, self.media_type_of(relative))
                )
                if len(found) >= _MAX_LISTED:
                    return found
        return found


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
