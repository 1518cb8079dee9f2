"""Retention: what `kennel prune` (and, with `KENNEL_RETENTION_DAYS`, the server every hour)
deletes once it is older than N days, and what it keeps.

What goes (each row once older than N days) and what keeps it:

- A task, with its turns, the files each turn published (`turn_files`: the record, not the
  file) and its mail threads: when its last activity (its latest turn's start, its end, its
  archival) is older, archived or not. Kept while it has a turn pending or running.
- Mail messages (their raw bytes included): received before. Kept while not yet taken in
  (`stored`) or while their answer is still to send (`pending`).
- Webhook events and their delivery attempts: made before. Kept while the delivery still
  retries (its DBOS workflow has not ended).
- Schedule runs: fired before (the schedule itself stays until it is deleted).
- Idempotency keys: sent before (a retry with an older key starts a new task).
- DBOS's workflows (status, inputs, outputs, steps, events, streams, messages): created before
  and ended. Kept while pending, enqueued or delayed.

Never deleted: workers, their workspace files (the worker's, shared by all its tasks, removed
with the worker), schedules, webhooks, users and keys. A reply to the mail of a deleted task
finds no thread and starts a new task. A worker whose tasks are all deleted shows as never run.

Each kind is deleted in keyset pages of `BATCH_ROWS`, one short transaction per page, and each
deletion tests the age again, so a task that got a follow-up turn meanwhile stays.
"""

from kennel.retention.service import BATCH_ROWS, COUNTED, PruneReport, prune

__all__ = ["BATCH_ROWS", "COUNTED", "PruneReport", "prune"]
