"""OpenTelemetry traces, exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

Configured by the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`, `OTEL_SDK_DISABLED`), read by the SDK itself.
With none set there is no tracer provider: OpenTelemetry's API answers every span with a
no-op one, DBOS makes none, and the agent is not instrumented.

Who makes which span: FastAPI one per request (its native telemetry); DBOS one per
workflow and step (a turn, a webhook delivery, mail intake); pydantic-ai one per agent run,
model request and tool call; the webhook and schedule code one per delivery attempt and per
firing. A turn's workflow carries the trace context of whoever queued it (`enqueue_turn`), in
DBOS's own workflow row, so it joins the request's (or the firing's) trace even when another
process runs it, or runs it again after a restart.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping

from opentelemetry import trace

from kennel import __version__

__all__ = [
    "TRACER_NAME",
    "configure_tracing",
    "flush_traces",
    "tracer",
    "tracing_enabled",
    "tracing_wanted",
]

TRACER_NAME = "kennel"

log = logging.getLogger("kennel.tracing")

_enabled = False


def tracing_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces (an OTLP endpoint, and the SDK not disabled)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    names = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return any(environ.get(name) for name in names)


def tracing_enabled() -> bool:
    """Whether this process exports traces (`configure_tracing` found an endpoint)."""
    return _enabled


def configure_tracing(executor_id: str) -> bool:
    """Install the process's tracer provider if the environment asks for traces; whether it
    did. Once per process: OpenTelemetry refuses a second global provider."""
    global _enabled
    if _enabled or not tracing_wanted():
        return _enabled
    # Imported here: the SDK and exporter cost start-up time a process without traces saves.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes: dict[str, str] = {
        SERVICE_INSTANCE_ID: executor_id,
        "service.version": __version__,
        "kennel.executor_id": executor_id,
    }
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if not named:  # the operator's name wins over ours
        attributes[SERVICE_NAME] = "kennel"
    provider = TracerProvider(resource=Resource.create(attributes))
    # The exporter reads its endpoint (adding /v1/traces), headers and timeout from the
    # environment; the batch its delay and sizes. Spans leave in the background, never in a
    # request's or a turn's way. A collector that cannot be reached costs the batch's spans
    # and a few warnings (the exporter's retries, 10 s in all), not the turns' time.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _enabled = True
    log.info("exporting traces over OTLP/HTTP", extra={"executorId": executor_id})
    return True


def flush_traces(timeout_seconds: float = 5.0) -> None:
    """Send the spans still waiting in the batch (at shutdown), waiting `timeout_seconds` at
    most.

    Not left to the SDK's exit hook: a server stopped by SIGTERM lost the spans of its last
    seconds (5 of 33 turns, measured with the default 5 s batch delay). The SDK's own
    `force_flush` ignores its timeout (1.45), and the exporter retries an unreachable
    collector for 10 s: it runs in a daemon thread, which the process does not wait for."""
    if not _enabled:
        return
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        flushing = threading.Thread(target=force_flush, name="kennel-flush-traces", daemon=True)
        flushing.start()
        flushing.join(timeout_seconds)


def tracer() -> trace.Tracer:
    """Kennel's own tracer (a no-op one when traces are off)."""
    return trace.get_tracer(TRACER_NAME, __version__)
