"""Workers' workspaces: the files only a worker's tasks can reach, kept in the database.

`names` holds the rule every name follows, `store.Workspace` the files of one worker (one
class, so another backend could replace it), `disk` the one-time import of the files that
earlier versions kept under `<data dir>/workspaces/`.
"""

from kennel.workspaces.names import WorkspaceError, clean_path, media_type_of
from kennel.workspaces.store import (
    CHUNK_BYTES,
    MAX_LISTED,
    FileReplaced,
    StoredFile,
    Workspace,
    WorkspaceFile,
)

__all__ = [
    "CHUNK_BYTES",
    "MAX_LISTED",
    "FileReplaced",
    "StoredFile",
    "Workspace",
    "WorkspaceError",
    "WorkspaceFile",
    "clean_path",
    "media_type_of",
]
