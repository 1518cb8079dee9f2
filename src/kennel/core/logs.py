"""Structured (JSON lines) logging with the request id of the request being served."""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar

from opentelemetry import trace

__all__ = ["configure_logging", "request_id_var"]

request_id_var: ContextVar[str | None] = ContextVar("kennel_request_id", default=None)

# Record attributes that are not extra fields (uvicorn adds an ANSI-coloured copy of its message).
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["requestId"] = request_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:  # traces are on: the line can be found from its span, and back
            entry["traceId"] = trace.format_trace_id(span.trace_id)
            entry["spanId"] = trace.format_span_id(span.span_id)
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Every line the process logs, as JSON on stderr: Kennel's, and its libraries' (uvicorn,
    DBOS, alembic, httpx) and Python's warnings."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = _JsonFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs each request
    # DBOS gives its logger a plain-text handler of its own when it finds none, and stops it
    # propagating (about 100 lines in 3 s of a database outage, none of them JSON). Given ours
    # first, it keeps it: each line once, as JSON, with the workflow id DBOS adds to it.
    dbos = logging.getLogger("dbos")
    dbos.handlers[:] = [handler]
    dbos.propagate = False
    logging.captureWarnings(True)  # a library's DeprecationWarning, say: a JSON line too
