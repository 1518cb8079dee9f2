"""Prometheus metrics: what each process counts (`instruments`, imported by every domain that
records an event: so this package loads nothing else), the requests it answers (`http`), and
`GET /metrics` with the queue read at scrape time (`scrape`, installed by the app)."""

from kennel.metrics.instruments import (
    record_database_error,
    record_firing,
    record_mail_accepted,
    record_mail_intake,
    record_mail_refused,
    record_model_requests,
    record_turn_end,
    record_turn_started,
    record_webhook_delivery,
)

__all__ = [
    "record_database_error",
    "record_firing",
    "record_mail_accepted",
    "record_mail_intake",
    "record_mail_refused",
    "record_model_requests",
    "record_turn_end",
    "record_turn_started",
    "record_webhook_delivery",
]
