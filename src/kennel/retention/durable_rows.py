"""DBOS's own rows of finished workflows, through DBOS's API (its tables are its business).

DBOS 3.4 has no garbage collection of its own: `delete_workflows` removes a workflow's status,
inputs, outputs and step results, and its events, streams and messages with it (their foreign
keys cascade from the status row). The same calls exist on the launched `DBOS` class (in the
server) and on a `DBOSClient` (the `kennel prune` command), so either is handed in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from dbos import WorkflowStatus

__all__ = ["FINISHED", "WorkflowStore", "finished_before", "forget", "unfinished"]

# A workflow in any other state (PENDING, ENQUEUED, DELAYED) may still run: never deleted.
FINISHED = ["SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"]


class WorkflowStore(Protocol):
    """`DBOS` itself or a `DBOSClient`."""

    def list_workflows(
        self,
        *,
        workflow_ids: list[str] | None = None,
        status: str | list[str] | None = None,
        end_time: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        load_input: bool = True,
        load_output: bool = True,
    ) -> list[WorkflowStatus]: ...

    def delete_workflows(self, workflow_ids: list[str]) -> None: ...


async def finished_before(
    store: WorkflowStore, cutoff: datetime, *, limit: int, offset: int = 0
) -> list[str]:
    """Ids of workflows that ended and were created before `cutoff`, oldest first."""
    found = await asyncio.to_thread(
        store.list_workflows,
        status=FINISHED,
        end_time=cutoff.isoformat(),
        limit=limit,
        offset=offset,
        load_input=False,
        load_output=False,
    )
    return [status.workflow_id for status in found]


async def unfinished(store: WorkflowStore, workflow_ids: Sequence[str]) -> set[str]:
    """Those of the ids whose workflow exists and has not ended."""
    if not workflow_ids:
        return set()
    found = await asyncio.to_thread(
        store.list_workflows,
        workflow_ids=list(workflow_ids),
        load_input=False,
        load_output=False,
    )
    return {status.workflow_id for status in found if status.status not in FINISHED}


async def forget(store: WorkflowStore, workflow_ids: Sequence[str]) -> None:
    await asyncio.to_thread(store.delete_workflows, list(workflow_ids))
