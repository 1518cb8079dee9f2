"""A worker's workspace: a folder of files that only that worker's tasks can reach."""

from __future__ import annotations

import functools
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["Workspace", "WorkspaceError", "WorkspaceFile", "has_workspace"]

_MAX_PATH = 255
_MAX_LISTED = 1000


class WorkspaceError(ValueError):
    """A path that leaves the workspace, or a file over a limit."""


@dataclass(frozen=True, slots=True)
class WorkspaceFile:
    path: str  # relative, POSIX separators
    size: int
    media_type: str


def media_type_of(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


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

    def clean_path(self, name: str) -> str:
        """The relative POSIX path for `name`, or WorkspaceError when it would escape the folder."""
        raw = name.replace("\\", "/").strip()
        parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".", "/")]
        if not parts or ".." in parts or raw.startswith("/") or len(raw) > _MAX_PATH:
            raise WorkspaceError(f"{name!r} is not a valid file name inside the workspace")
        if any(p.startswith(".") or "\x00" in p for p in parts):
            raise WorkspaceError(f"{name!r}: hidden names are not allowed")
        return "/".join(parts)

    def _resolve(self, relative: str) -> Path:
        target = (self.root / relative).resolve()
        if self.root not in target.parents:
            raise WorkspaceError(f"{relative!r} is outside the workspace")
        return target

    def write(self, name: str, data: bytes) -> WorkspaceFile:
        relative = self.clean_path(name)
        if len(data) > self.max_file_bytes:
            raise WorkspaceError(f"{relative!r} is larger than {self.max_file_bytes} bytes")
        target = self._resolve(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(data)
        os.replace(partial, target)  # readers never see half a file
        return WorkspaceFile(relative, len(data), media_type_of(relative))

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
        return target, WorkspaceFile(relative, target.stat().st_size, media_type_of(relative))

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
                found.append(WorkspaceFile(relative, full.stat().st_size, media_type_of(relative)))
                if len(found) >= _MAX_LISTED:
                    return found
        return found
