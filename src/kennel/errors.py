"""The API's one error type and the handlers that render the contract's error shape."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
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
}


class ApiError(Exception):
    """An error the API answers with: a status, a type, a message and the field at fault."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, type: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.type = type or _TYPE_BY_STATUS.get(status, "api_error")


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


class UpstreamModelError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(502, f"The model provider failed: {message}", type="model_error")


def error_body(status: int, message: str, param: str | None = None, type: str | None = None):
    """The contract's `{"error": {...}}` document."""
    return {
        "error": {
            "type": type or _TYPE_BY_STATUS.get(status, "api_error"),
            "message": message,
            "param": param,
        }
    }


def _param_of(loc: tuple[Any, ...]) -> str | None:
    # FastAPI prefixes the location with where it came from ("body", "query", "path").
    parts = [str(p) for p in loc[1:] if not isinstance(p, int)] if len(loc) > 1 else []
    return ".".join(parts) or (str(loc[0]) if loc else None)


def _validation_message(err: dict[str, Any], param: str | None) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"Unknown field {param!r}."
    if kind == "missing":
        return f"Field {param!r} is required."
    if kind == "json_invalid":
        return "The request body is not valid JSON."
    msg = err.get("msg", "Invalid value.")
    return f"{param}: {msg}" if param else msg


def api_error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.status, exc.message, exc.param, exc.type), status_code=exc.status
    )


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return api_error_response(exc)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "Invalid request."}
    loc = tuple(first.get("loc", ()))
    param = None if first.get("type") == "json_invalid" else _param_of(loc)
    if loc == ("body",) and first.get("type") == "missing":
        return JSONResponse(error_body(400, "A JSON request body is required."), status_code=400)
    return JSONResponse(error_body(400, _validation_message(first, param), param), status_code=400)


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = {
        404: "No such route.",
        405: "Method not allowed on this route.",
    }.get(exc.status_code, str(exc.detail))
    return JSONResponse(
        error_body(exc.status_code, message),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        error_body(500, "Internal server error; this is a bug.", type="api_error"), status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, FastAPI's own included, in the contract's shape."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
