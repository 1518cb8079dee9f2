"""Pure ASGI middleware: request ids with access logs, and the request body size limit."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException

from kennel.api.errors import INTERNAL_ERROR, error_body
from kennel.api.unavailable import RETRY_AFTER_SECONDS, transient_cause
from kennel.core.logs import request_id_var

__all__ = ["BodyLimitMiddleware", "RequestIdMiddleware"]

Scope = dict[str, Any]
log = logging.getLogger("kennel.access")


class RequestIdMiddleware:
    """Give each request an id (or keep a sane incoming one), echo it, log the request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and len(incoming) <= 64 and incoming.isascii() else None
        request_id = request_id or secrets.token_hex(8)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Here, not in an exception handler: this log line still knows the request id, and
            # answering here (instead of re-raising to the server) keeps the connection open.
            cause = transient_cause(exc)
            if cause is not None:  # the database or the disk, for a while: not a bug
                log.warning(
                    "%s %s: %s (%s)",
                    scope["method"],
                    scope["path"],
                    cause,
                    " ".join(str(exc).split())[:300],
                    extra={"requestId": request_id},
                )
            else:
                log.exception(
                    "unhandled error in %s %s",
                    scope["method"],
                    scope["path"],
                    extra={"requestId": request_id},
                )
            if response_started:
                raise
            if cause is not None:
                message = f"{cause}. Try again shortly."
                body = error_body(503, message, type="service_unavailable")
                headers = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
                await _send_json(send_with_id, 503, body, headers)
            else:
                await _send_json(send_with_id, 500, INTERNAL_ERROR)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "status": status,
                        "durationMs": round((time.perf_counter() - started) * 1000, 2),
                        "userId": (scope.get("state") or {}).get("caller_user_id"),
                    },
                )
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """413 for a body over the limit: by its Content-Length, or as it streams in."""

    def __init__(self, app: Any, *, limits: Callable[[], tuple[int, int]]) -> None:
        self.app = app
        self.limits = limits  # (JSON, multipart), read per request: settings can change

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS", "DELETE"}:
            await self.app(scope, receive, send)
            return
        content_type = _header(scope, b"content-type") or ""
        json_limit, multipart_limit = self.limits()
        limit = multipart_limit if content_type.startswith("multipart/") else json_limit
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        received = 0
        response_started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message  # type: ignore[no-any-return]  # an ASGI message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await _too_large(send, limit)


class _BodyTooLarge(HTTPException):
    # An HTTPException, so FastAPI's body parsing lets it through to the 413 rendering.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _too_large(send: Any, limit: int) -> None:
    await _send_json(send, 413, error_body(413, f"The request body is larger than {limit} bytes."))


async def _send_json(
    send: Any,
    status: int,
    document: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(document).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
