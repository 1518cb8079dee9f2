"""The metrics each process keeps in memory, and the one call per event that records them.

Recording is a counter increment or a histogram observation: no I/O, no database. What
needs the database (the queue) is read when `/metrics` is scraped (`kennel.metrics.scrape`).
Labels are few-valued on purpose: never a task, turn, worker or organization id, which
would make a time series per id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from pydantic_ai.messages import ModelMessage, ModelResponse
from sqlalchemy import exc as sa_exc

from kennel.core.causes import causes, transient_cause

__all__ = [
    "REGISTRY",
    "record_database_error",
    "record_firing",
    "record_http_request",
    "record_mail_accepted",
    "record_mail_intake",
    "record_mail_refused",
    "record_model_requests",
    "record_turn_end",
    "record_turn_started",
    "record_webhook_delivery",
    "status_class",
]

# No `_created` series beside each counter and histogram: a timestamp per series doubles a
# scrape's lines, and Prometheus reads a restart from a counter's drop without it.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in prometheus-client
# Kennel's own registry, not prometheus_client's global one: what a library registers there
# does not leak into /metrics, and the process collectors are chosen here.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# Seconds: a turn is a model request or many, with tools; a model request 50 ms (a local
# small model) to minutes (a long answer); an HTTP request mostly milliseconds, a stream the
# length of its turn.
_TURN_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_MODEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# A firing is "late" by the dispatcher's wake-up (milliseconds), its poll (a second for a
# schedule another process made), or downtime (caught up: minutes to days).
_LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)
_WEBHOOK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60)

TURNS_STARTED = Counter(
    "kennel_turns_started",
    "Turns this process started running (marked running; a turn recovered after a crash is "
    "counted again by the process that recovers it).",
    registry=REGISTRY,
)
TURNS_ENDED = Counter(
    "kennel_turns_ended",
    "Turns that ended, by status (completed, error, aborted) and error code (empty when none); "
    "counted by the process that ran the turn, or that aborted it.",
    ["status", "error_code"],
    registry=REGISTRY,
)
TURN_DURATION = Histogram(
    "kennel_turn_duration_seconds",
    "Wall time of the turns this process ran, from running to ended, by status.",
    ["status"],
    buckets=_TURN_BUCKETS,
    registry=REGISTRY,
)
MODEL_REQUEST_DURATION = Histogram(
    "kennel_model_request_duration_seconds",
    "Time the model took on each request of a turn (sent to the last streamed part), as "
    "pydantic-ai measures it where the request is sent.",
    buckets=_MODEL_BUCKETS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "kennel_tokens",
    "Model tokens of the turns this process ran, by kind (input, output).",
    ["kind"],
    registry=REGISTRY,
)
CREDITS = Counter(
    "kennel_credits",
    "Credits charged for the turns this process ran.",
    registry=REGISTRY,
)
SCHEDULE_FIRINGS = Counter(
    "kennel_schedule_firings",
    "Schedule firings by this process's dispatcher, by outcome (started, caught_up, "
    "skipped_overlap, failed).",
    ["outcome"],
    registry=REGISTRY,
)
SCHEDULE_LATENESS = Histogram(
    "kennel_schedule_lateness_seconds",
    "How long after its due time each firing was made (fired time minus due time).",
    buckets=_LATENESS_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "kennel_webhook_deliveries",
    "Webhook delivery attempts (one POST, one row of the delivery log), by outcome: success "
    "(a 2xx), error (another answer, or none), unknown (cut off by a stop while sending).",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_DURATION = Histogram(
    "kennel_webhook_delivery_duration_seconds",
    "Duration of each webhook delivery attempt that was sent (DNS to the answer read), by "
    "outcome (success, error).",
    ["outcome"],
    buckets=_WEBHOOK_BUCKETS,
    registry=REGISTRY,
)
MAIL_ACCEPTED = Counter(
    "kennel_mail_accepted",
    "Messages the SMTP listener accepted (a 250 at the end of DATA; kept, then taken in).",
    registry=REGISTRY,
)
MAIL_REFUSED = Counter(
    "kennel_mail_refused",
    "Refusals by the SMTP listener, by reason: per recipient at RCPT (unknown_recipient, "
    "sender_not_allowed, too_many_recipients, recipient_error) or per message at DATA "
    "(bare_cr_lf, too_complex, store_error).",
    ["reason"],
    registry=REGISTRY,
)
MAIL_INTAKES = Counter(
    "kennel_mail_intakes",
    "Accepted messages taken in, by outcome: started (a task's turn), refused (automatic "
    "mail, a sender not trusted or not allowed), failed (unreadable, or the turn could not "
    "be started).",
    ["outcome"],
    registry=REGISTRY,
)
DATABASE_ERRORS = Counter(
    "kennel_database_errors",
    "Database errors met where Kennel catches or retries them, by kind (transient: the "
    "database unreachable or busy, the disk full; other) and where (request, step, "
    "dispatcher, heartbeat, queueing, mail, scrape).",
    ["kind", "where"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "kennel_http_requests",
    "HTTP requests answered, by method, route template (`/api/tasks/{task_id}`; "
    "`unmatched` for none) and status class (2xx, 4xx, ...).",
    ["method", "route", "status_class"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "kennel_http_request_duration_seconds",
    "Time to answer each HTTP request (to the end of its body: a stream's whole length), by "
    "method and route template.",
    ["method", "route"],
    buckets=_HTTP_BUCKETS,
    registry=REGISTRY,
)

# Series that exist from the start at 0, so that a rate over them is defined before the
# first event (Prometheus cannot tell "none yet" from "no such series").
TURNS_ENDED.labels("completed", "")
for _status in ("completed", "error"):
    TURN_DURATION.labels(_status)
for _kind in ("input", "output"):
    TOKENS.labels(_kind)
for _outcome in ("success", "error", "unknown"):
    WEBHOOK_DELIVERIES.labels(_outcome)
for _outcome in ("success", "error"):
    WEBHOOK_DURATION.labels(_outcome)
SCHEDULE_FIRINGS.labels("started")
for _reason in ("unknown_recipient", "sender_not_allowed"):
    MAIL_REFUSED.labels(_reason)
for _outcome in ("started", "refused", "failed"):
    MAIL_INTAKES.labels(_outcome)
for _kind in ("transient", "other"):
    DATABASE_ERRORS.labels(_kind, "request")


def record_turn_started() -> None:
    TURNS_STARTED.inc()


def record_turn_end(
    status: str,
    error_code: str | None,
    *,
    seconds: float | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    credits: int = 0,
) -> None:
    """A turn ended: by status and code; its duration, tokens and credits when it ran here."""
    TURNS_ENDED.labels(status, error_code or "").inc()
    if seconds is not None:
        TURN_DURATION.labels(status).observe(seconds)
    if input_tokens:
        TOKENS.labels("input").inc(input_tokens)
    if output_tokens:
        TOKENS.labels("output").inc(output_tokens)
    if credits:
        CREDITS.inc(credits)


def record_model_requests(messages: Iterable[ModelMessage]) -> int:
    """Observe the duration of each model response in `messages` that has one; how many."""
    observed = 0
    for message in messages:
        if isinstance(message, ModelResponse) and message.duration is not None:
            MODEL_REQUEST_DURATION.observe(message.duration.total_seconds())
            observed += 1
    return observed


def record_firing(outcome: str, lateness_seconds: float) -> None:
    SCHEDULE_FIRINGS.labels(outcome).inc()
    SCHEDULE_LATENESS.observe(max(0.0, lateness_seconds))


def record_webhook_delivery(outcome: str, duration_ms: int | None) -> None:
    """One attempt's end; its duration only when it was sent (an `unknown` one has none)."""
    WEBHOOK_DELIVERIES.labels(outcome).inc()
    if duration_ms is not None and outcome != "unknown":
        WEBHOOK_DURATION.labels(outcome).observe(duration_ms / 1000)


def record_mail_accepted() -> None:
    MAIL_ACCEPTED.inc()


def record_mail_refused(reason: str) -> None:
    MAIL_REFUSED.labels(reason).inc()


def record_mail_intake(outcome: str) -> None:
    MAIL_INTAKES.labels(outcome).inc()


def record_database_error(exc: BaseException, where: str) -> str | None:
    """Count `exc` if it came from the database (or the disk under it); its kind, or None
    when it did not (then nothing is counted)."""
    if transient_cause(exc) is not None:
        kind = "transient"
    elif any(isinstance(c, sa_exc.SQLAlchemyError | sqlite3.Error) for c in causes(exc)):
        kind = "other"
    else:
        return None
    DATABASE_ERRORS.labels(kind, where).inc()
    return kind


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def record_http_request(method: str, route: str, status: int, seconds: float) -> None:
    """One answered request; a method outside HTTP's usual few counts as `other` (a client
    chooses it, and must not make series at will)."""
    method = method if method in _METHODS else "other"
    HTTP_REQUESTS.labels(method, route, status_class(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


def status_class(status: int) -> str:
    """`2xx` for 200-299, ...; `other` outside 100-599."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"
