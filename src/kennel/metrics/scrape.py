"""`GET /metrics`: the process's counters and histograms, and the queue read from the database
at scrape time, in Prometheus's text format (or OpenMetrics, if the scraper asks for it)."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Iterator

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from kennel.api.errors import Unauthorized
from kennel.core.runtime import of_request
from kennel.core.timestamps import utcnow
from kennel.db import Database
from kennel.metrics import repository as repo
from kennel.metrics.instruments import REGISTRY, record_database_error

__all__ = ["METRICS_PATH", "QUEUE_READ_SECONDS", "install_metrics", "queue_metrics"]

log = logging.getLogger("kennel.metrics")

METRICS_PATH = "/metrics"
# A scrape must answer even while the database does not (the counters say what happened):
# past this, the queue's gauges are left out of that scrape.
QUEUE_READ_SECONDS = 2.0


def install_metrics(app: FastAPI) -> None:
    """Serve `GET /metrics` (no API key; `KENNEL_METRICS_TOKEN` when set)."""

    @app.get(
        METRICS_PATH,
        tags=["Operations"],
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
            401: {"description": "`KENNEL_METRICS_TOKEN` is set and was not given."},
        },
    )
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process (no API key; see the README's "Metrics")."""
        rt = of_request(request)
        token = rt.settings.metrics_token
        if token is not None and not _bearer_matches(request, token.get_secret_value()):
            raise Unauthorized("Metrics need Authorization: Bearer <KENNEL_METRICS_TOKEN>.")
        gauges = await queue_metrics(rt.db)
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        # In a thread: prometheus-client writes about 16 us a line here (a loaded 2-core
        # machine), 45 ms for 160 routes' series; on the loop, every request would wait it.
        body = await asyncio.to_thread(encoder, _Scrape(gauges))
        return Response(body, media_type=content_type)


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given_bytes, token_bytes = given.strip().encode(), token.encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, token_bytes)


async def queue_metrics(db: Database) -> list[Metric]:
    """The turns waiting and running in every process sharing the database, and the age of the
    oldest waiting one; none when the database does not answer in time."""
    try:
        async with asyncio.timeout(QUEUE_READ_SECONDS):
            async with db.read(snapshot=False) as r:
                found = await repo.in_flight(r)
    except Exception as exc:
        kind = record_database_error(exc, "scrape")
        log.warning("metrics: the queue was not read (%s: %s)", kind or type(exc).__name__, exc)
        return []
    age = (utcnow() - found.oldest_pending_at).total_seconds() if found.oldest_pending_at else 0
    return [
        GaugeMetricFamily(
            "kennel_turns_queued",
            "Turns waiting to run (pending), in every process sharing the database.",
            value=found.pending,
        ),
        GaugeMetricFamily(
            "kennel_turns_oldest_queued_age_seconds",
            "How long the oldest waiting turn has waited (0 when none waits).",
            value=max(0.0, age),
        ),
        GaugeMetricFamily(
            "kennel_turns_running",
            "Turns running, in every process sharing the database.",
            value=found.running,
        ),
    ]


class _Scrape:
    """One scrape: the registry's metrics, then the gauges read for it."""

    def __init__(self, gauges: list[Metric]) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self._gauges
