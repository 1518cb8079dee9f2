"""The one-time import of the workspace files earlier versions kept on disk.

They lived under `<data dir>/workspaces/<worker id>/`. When the server starts,
`import_disk_workspaces` writes each such file of a worker in the database into the database
(unless a file of that path is there already: written since, so newer) and then deletes it
from disk; folders left empty, Kennel's partial-write temporaries and, at the end, an empty
`workspaces/` folder are removed too. Nothing is renamed: a data folder without `workspaces/`
is one that has nothing left to import, and the next start costs one `stat`.

What cannot be imported stays on disk, with a warning naming it: the folder of a worker the
database does not know (another database's?), a name the workspace refuses, a file where the
database has a folder. Processes starting at once on one data folder each import what they
find; a file both write is written twice with the same bytes, and one that the other has
already deleted is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from kennel.db import Database
from kennel.workspaces import repository as repo
from kennel.workspaces.names import WorkspaceError, clean_path
from kennel.workspaces.store import Workspace

__all__ = ["import_disk_workspaces"]

log = logging.getLogger("kennel")

_PARTIAL = ".kennel-partial"  # where earlier versions wrote a file before renaming it


async def import_disk_workspaces(db: Database, data_dir: Path) -> int:
    """Import the files under `<data_dir>/workspaces/` into the database; how many."""
    root = data_dir / "workspaces"
    if not root.is_dir():
        return 0
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    async with db.read() as r:
        known = await repo.existing_workers(r, folders)
    imported = 0
    for worker_id in folders:
        if worker_id not in known:
            log.warning(
                "workspace folder %s is of no worker in the database: left on disk",
                root / worker_id,
            )
            continue
        imported += await _import_folder(db, root / worker_id, worker_id)
    await asyncio.to_thread(_remove_if_empty, root)
    if imported:
        log.info("imported %d workspace files from %s into the database", imported, root)
    return imported


async def _import_folder(db: Database, folder: Path, worker_id: str) -> int:
    # Files were checked against the size limit when they were written; a lower limit now
    # does not make them vanish.
    workspace = Workspace(db, worker_id, max_file_bytes=2**62)
    imported = 0
    for full, relative in await asyncio.to_thread(_files_under, folder):
        try:
            if clean_path(relative) != relative:
                raise WorkspaceError(f"{relative!r} is not a name the workspace keeps")
            if await workspace.file(relative) is None:
                data = await asyncio.to_thread(full.read_bytes)
                await workspace.write(relative, data)
                imported += 1
            await asyncio.to_thread(full.unlink)
        except FileNotFoundError:
            continue  # another process imported it first
        except WorkspaceError as exc:
            log.warning("workspace file %s not imported, left on disk: %s", full, exc)
    shutil.rmtree(folder / _PARTIAL, ignore_errors=True)
    await asyncio.to_thread(_remove_empty_folders, folder)
    return imported


def _files_under(folder: Path) -> list[tuple[Path, str]]:
    """(full path, relative POSIX path) of the files under `folder`, partial writes aside."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != _PARTIAL)
        for filename in sorted(filenames):
            full = Path(dirpath) / filename
            found.append((full, full.relative_to(folder).as_posix()))
    return found


def _remove_empty_folders(folder: Path) -> None:
    for dirpath, _dirnames, _filenames in os.walk(folder, topdown=False):
        _remove_if_empty(Path(dirpath))


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (or gone): what is left is logged where it was left
