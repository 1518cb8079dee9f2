"""Counting HTTP requests by route template: one pure ASGI middleware."""

from __future__ import annotations

import time
from typing import Any

from kennel.metrics.instruments import record_database_error, record_http_request

__all__ = ["UNMATCHED", "HttpMetricsMiddleware", "route_template"]

UNMATCHED = "unmatched"


class HttpMetricsMiddleware:
    """Count each request by the template of the route that served it and its status class,
    and time it to the end of its answer.

    It sits inside `RequestIdMiddleware`, so it sees an unhandled error before that one turns
    it into a 500 or 503: counted `5xx`, and, when it came from the database, as a database
    error of the request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_recording(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        except Exception as exc:
            status = 500  # answered 500 or 503 outside: the same class
            record_database_error(exc, "request")
            raise
        finally:
            elapsed = time.perf_counter() - started
            record_http_request(scope["method"], route_template(scope), status, elapsed)


def route_template(scope: dict[str, Any]) -> str:
    """The path template of the route the router matched (it leaves it in the scope), never
    the path itself: `/api/tasks/{task_id}` is one series, not one per task."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED
