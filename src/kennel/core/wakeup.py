"""Queue runners that sleep while there is nothing to do and wake when there is.

DBOS runs one thread per queue that polls it: a transaction of several statements every
`polling_interval_sec`, work or not. Polled every 50 ms for a turn's start latency, an idle
server spent 6-13 % of a core on it; polled every second, a turn posted to an idle server
waited up to a second to start. Here the runner waits up to `queue_polling_seconds` (1 s by
default: work queued by another process, or taken over from a dead one) and is woken at
once by what this process knows means work:

- this process queued a workflow on it (`ring` after `DBOS.enqueue_workflow_async`);
- one of this process's workflows on it ended (a slot freed for the next queued one: rung
  only when the runner was full, a workflow a poll had just dequeued but DBOS had not yet
  counted as running hid a freed slot, and the queue waited for the next poll: 5 s for mail);
- this process took a dead one's work over, or DBOS recovered this process's own at start-up
  (`ring_all`: DBOS put it back on its queues).

The queue is still the only way work starts: a wake-up only makes the next poll sooner.

The same wait is the admission control of a loaded process. Turns run on the server's event
loop, beside its requests; a runner that dequeues while the loop is already behind (its lag,
sampled every 50 ms while it runs workflows and every second while it runs none, above
`LAG_LIMIT_SECONDS`) with turns of its own running only adds work that competes with the
turns running and the requests waiting: offered 4x what it could do, a server took every turn
at once, answered POSTs in seconds and reads in more, and finished fewer turns. The runner now
waits while the loop is behind, so queued work stays queued (where another process can take
it) until this one has room (`bench/overload.py`). Mail coming in over SMTP holds the polls
too (`defer`): the intakes and turns a burst of mail starts took SQLite's write lock and the
interpreter from the messages still arriving, and a sender got 30 messages a second accepted
instead of 250 (`bench/mail.py`).

DBOS 3.4 has no API to wake a runner, so four of its internals are wrapped (`install`, before
`DBOS.launch`): the function each runner thread runs and the one of the thread that starts
them, each given a stop event whose `wait` also returns on a ring, the release of a running
workflow's slot, and start-up recovery. `tests/e2e/test_wakeup.py` (and the recovery and
takeover tests, which wait less than `_RARELY_SECONDS`) fail if a DBOS release stops calling
them."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from dbos._utils import INTERNAL_QUEUE_NAME

__all__ = [
    "LAG_LIMIT_SECONDS",
    "defer",
    "install",
    "queues_registered",
    "ring",
    "ring_all",
    "watching_lag",
]

# A loop this far behind has more than enough to do: dequeue nothing more until it catches up.
LAG_LIMIT_SECONDS = 0.05
_SAMPLE_SECONDS = 0.05
_HOLD_SECONDS = 2.0
_IDLE_SAMPLE_SECONDS = 1.0
_lag = 0.0  # how late the loop's latest sample woke
_deferred = 0.0  # no poll before this monotonic time (mail being taken in)


def defer(seconds: float) -> None:
    """Hold every runner's next poll for `seconds` from now (for `_HOLD_SECONDS` at most, as
    a loop behind): the SMTP front door calls it as each message comes in, so a burst of mail
    is taken in first, then started (`kennel.mail.front_door`)."""
    global _deferred
    _deferred = max(_deferred, time.monotonic() + seconds)


class _Bell:
    """What a runner thread waits on in place of DBOS's stop event: stop (DBOS's shutdown
    sets every event it holds, this one among them) or a ring, whichever comes first."""

    def __init__(
        self,
        stop: threading.Event,
        running: Callable[[], int] = lambda: 0,
        *,
        at_least: float = 0.0,
    ) -> None:
        # DBOS's manager hands its own stop event, here a bell, to each runner it starts:
        # a runner waits on the event beneath, as a wait on the manager's bell would take
        # the manager's ring and last as long as the manager's (`at_least`).
        event: Any = stop
        while isinstance(event, _Bell):
            event = event._stop
        self._stop: threading.Event = event
        self.running = running  # how many of the queue's workflows this process runs
        self._at_least = at_least  # unrung, wait this long at least, whatever DBOS asks
        self._rung = threading.Event()
        # Rung from the start: a runner polls as soon as it starts (work may have been queued
        # before it existed, with no bell to ring).
        self._rung.set()

    def is_set(self) -> bool:
        return self._stop.is_set()

    def set(self) -> None:
        self._rung.set()

    ring = set

    def _behind(self) -> bool:
        """The loop is behind, and this runner's own turns may be why (one that is behind
        with none running here, a machine busy with other processes, is not held); or mail is
        coming in (`defer`)."""
        return (_lag > LAG_LIMIT_SECONDS and self.running() > 0) or time.monotonic() < _deferred

    def wait(self, timeout: float | None = None) -> bool:
        self._rung.wait(None if timeout is None else max(timeout, self._at_least))
        # Cleared before the poll that follows: work queued after this is rung again.
        self._rung.clear()
        # Behind: hold the poll, for at most `_HOLD_SECONDS` (a loop that stays behind for
        # reasons of its own must not starve the queue).
        held_until = time.monotonic() + _HOLD_SECONDS
        while self._behind() and time.monotonic() < held_until:
            if self._stop.wait(_SAMPLE_SECONDS):
                break
        return self._stop.is_set()


_bells: dict[str, _Bell] = {}
_concurrency: dict[str, int] = {}


def _running_here() -> bool:
    """Whether this process runs a workflow of one of its runners' queues."""
    return any(bell.running() for bell in list(_bells.values()))


def ring(queue_name: str) -> None:
    """Wake this process's runner of `queue_name` (a no-op before it started)."""
    bell = _bells.get(queue_name)
    if bell is not None:
        bell.ring()


# DBOS's thread that starts a runner for each queue it finds registered, every second.
_MANAGER = ""
# The queue DBOS puts recovered workflows on (the ones no queue ran), and the manager: their
# work comes only with what rings them (start-up recovery, a takeover, queues registered),
# so they look for it themselves only this often (each look of a second cost an idle server
# 0.1-0.3 % of a core).
_RARELY_SECONDS = 10.0


def ring_all() -> None:
    """Wake every runner of this process: work was put back on their queues (a dead process's,
    taken over here), which no enqueue here rang for."""
    for bell in list(_bells.values()):
        bell.ring()


def queues_registered() -> None:
    """Have DBOS start the runners of queues registered just now, not a second later: the
    queues are registered after DBOS launched, and its first look for them came before."""
    ring(_MANAGER)


@contextlib.contextmanager
def _bell_for(
    name: str,
    stop: threading.Event,
    dbos: Any,
    running: Callable[[], int] = lambda: 0,
    *,
    at_least: float = 0.0,
) -> Iterator[Any]:
    """A bell for the DBOS thread `name` while it runs (typed `Any`: DBOS's threads take an
    `Event`, and use only its `wait` and `is_set`)."""
    bell = _Bell(stop, running, at_least=at_least)
    # Shutdown sets the events of this list: a waiting thread then stops at once.
    dbos.background_thread_stop_events.append(bell)
    _bells[name] = bell
    try:
        yield bell
    finally:
        if _bells.get(name) is bell:
            del _bells[name]


def install(concurrency: dict[str, int]) -> None:
    """Wrap DBOS's runner threads and slot releases (idempotent); `concurrency`: each of
    Kennel's queues' slots in this process, to tell when a release leaves room."""
    import dbos._core as core
    import dbos._dbos as launcher
    import dbos._queue as queues

    _concurrency.update(concurrency)
    manage = launcher.queue_thread  # type: ignore[attr-defined]  # imported there from _queue
    if not getattr(manage, "kennel", False):

        def manage_with_bell(stop_event: threading.Event, dbos: Any) -> None:
            with _bell_for(_MANAGER, stop_event, dbos, at_least=_RARELY_SECONDS) as bell:
                manage(bell, dbos)

        manage_with_bell.kennel = True  # type: ignore[attr-defined]  # the mark of the wrapper
        launcher.queue_thread = manage_with_bell  # type: ignore[attr-defined]  # see above
    run = queues.queue_worker_thread
    if not getattr(run, "kennel", False):

        def run_with_bell(stop_event: threading.Event, dbos: Any, queue: Any) -> None:
            active = dbos._active_workflows_set
            running = functools.partial(active.count_for_queue, queue.name)
            at_least = _RARELY_SECONDS if queue.name == INTERNAL_QUEUE_NAME else 0.0
            with _bell_for(queue.name, stop_event, dbos, running, at_least=at_least) as bell:
                run(bell, dbos, queue)

        run_with_bell.kennel = True  # type: ignore[attr-defined]  # the mark of the wrapper
        queues.queue_worker_thread = run_with_bell

    recover = launcher.startup_recovery_thread  # type: ignore[attr-defined]  # imported there
    if not getattr(recover, "kennel", False):

        def recover_and_ring(dbos: Any, workflows: Any) -> None:
            recover(dbos, workflows)
            ring_all()  # what it put back on the queues starts now, not at the next poll

        recover_and_ring.kennel = True  # type: ignore[attr-defined]  # the mark of the wrapper
        launcher.startup_recovery_thread = recover_and_ring  # type: ignore[attr-defined,assignment]  # see above

    remove = core.ActiveWorkflowById._remove
    if not getattr(remove, "kennel", False):

        def remove_and_ring(self: Any, key: str, bucket: Any) -> None:
            remove(self, key, bucket)
            if bucket is None:
                return
            name = bucket[0]
            slots = _concurrency.get(name)
            if slots is not None and self.count_for_queue(name) < slots:
                ring(name)

        remove_and_ring.kennel = True  # type: ignore[attr-defined]  # the mark of the wrapper
        core.ActiveWorkflowById._remove = remove_and_ring  # type: ignore[method-assign]  # see above


@contextlib.asynccontextmanager
async def watching_lag() -> AsyncIterator[None]:
    """Sample the running loop's lag while the block runs (the server's lifetime)."""

    async def sample() -> None:
        global _lag
        loop = asyncio.get_running_loop()
        while True:
            # Often while this process runs workflows (the only time a runner is held), once
            # a second while it runs none: an idle server is not woken 20 times a second. A
            # second's sleep that wakes late is as good a sample of the lag.
            interval = _SAMPLE_SECONDS if _running_here() else _IDLE_SAMPLE_SECONDS
            began = loop.time()
            await asyncio.sleep(interval)
            _lag = max(0.0, loop.time() - began - interval)

    sampler = asyncio.create_task(sample(), name="kennel-loop-lag")
    try:
        yield
    finally:
        global _lag
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        _lag = 0.0
