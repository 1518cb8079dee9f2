"""The API's one error type and the handlers that render the contract's error shape."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

__all__ = [
    "INTERNAL_ERROR",
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "Unauthorized",
    "UpstreamModelError",
    "api_error_response",
    "error_body",
    "install_error_handlers",
    "validation_error",
]

log = logging.getLogger("kennel.errors")

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error the API answers with: a status, a type, a message and the field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.type = type or _TYPE_BY_STATUS.get(status, "api_error")
        self.headers = headers


class BadRequest(ApiError):
    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(400, message, param=param)


class Unauthorized(ApiError):
    def __init__(
        self, message: str = "A valid API key is required (Authorization: Bearer)."
    ) -> None:
        super().__init__(401, message)


class Forbidden(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(403, message)


class NotFound(ApiError):
    def __init__(self, what: str, ident: str) -> None:
        super().__init__(404, f"No {what} with id {ident!r}.")


class Conflict(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(409, message)


class TooBusy(ApiError):
    """429: this process is taking in as much as it can; the client should come back."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(429, message, headers={"Retry-After": str(retry_after)})


class UpstreamModelError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(502, f"The model provider failed: {message}", type="model_error")


def error_body(
    status: int, message: str, param: str | None = None, type: str | None = None
) -> dict[str, Any]:
    """The contract's `{"error": {...}}` document."""
    return {
        "error": {
            "type": type or _TYPE_BY_STATUS.get(status, "api_error"),
            "message": message,
            "param": param,
        }
    }


_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def validation_error(errors: Sequence[Any], *, json_sent: bool = True) -> ApiError:
    """The contract's 400 for a pydantic validation failure: the first error, with `param`
    naming the field in the contract's casing (`when.delayInSeconds`, `outputSchema`).

    FastAPI prefixes locations with where the value came from (`body`, `query`); list indices
    and the tag of a discriminated union (pydantic puts it in the location) are not fields."""
    first = errors[0] if errors else {"loc": (), "msg": "Invalid request.", "type": ""}
    kind = first.get("type", "")
    loc = list(first.get("loc", ()))
    if loc and loc[0] in _SOURCES:
        loc = loc[1:]
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int) or (parts and part in _UNION_TAGS.get(parts[-1], ())):
            continue
        parts.append(str(part))
    param = ".".join(parts) or None
    if kind == "json_invalid":
        return BadRequest("The request body is not valid JSON.")
    if kind == "extra_forbidden":
        return BadRequest(f"Unknown field {param!r}.", param=param)
    if kind == "missing":
        if param is None:
            return BadRequest("A JSON request body is required.")
        return BadRequest(f"Field {param!r} is required.", param=param)
    if kind in ("union_tag_invalid", "union_tag_not_found") and param is not None:
        param = f"{param}.type"
    if param is None and kind in {"dict_type", "model_attributes_type", "model_type"}:
        # FastAPI hands on the raw bytes of a body that was not sent as JSON.
        if json_sent:
            return BadRequest("The request body must be a JSON object.")
        return ApiError(415, _JSON_ONLY)
    msg = str(first.get("msg", "Invalid value."))
    return BadRequest(f"{param}: {msg}" if param else msg, param=param)


_JSON_ONLY = "Send the body as a JSON object, with Content-Type: application/json."
# The discriminated unions of request bodies, by field: pydantic names the branch in the location.
_UNION_TAGS = {"when": frozenset({"scheduled", "delayed", "cron", "interval"})}


def api_error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.status, exc.message, exc.param, exc.type),
        status_code=exc.status,
        headers=exc.headers,
    )


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return api_error_response(exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    media_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    json_sent = media_type == "application/json" or media_type.endswith("+json")
    return api_error_response(validation_error(exc.errors(), json_sent=json_sent))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = {
        404: "No such route.",
        405: "Method not allowed on this route.",
    }.get(exc.status_code, str(exc.detail))
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        # Starlette names the methods of the first route that matched the path; a path served
        # by several routes (GET, PATCH, DELETE) allows all of theirs.
        headers["Allow"] = ", ".join(_methods_allowed(request))
    param = getattr(exc, "param", None)  # kennel.api.http.BodyError names the field it can
    return JSONResponse(
        error_body(exc.status_code, message, param), status_code=exc.status_code, headers=headers
    )


def _methods_allowed(request: Request) -> list[str]:
    """The methods of every route of the path (all in the app's own list: `http.add_routes`)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            if route.matches(request.scope)[0] != Match.NONE:
                methods |= route.methods
    return sorted(methods)


INTERNAL_ERROR = error_body(500, "Internal server error; this is a bug.", type="api_error")


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, FastAPI's own included, in the contract's shape."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    # Unexpected errors are logged and answered by kennel.api.middleware.RequestIdMiddleware, which
    # knows the request id and keeps the connection open.
