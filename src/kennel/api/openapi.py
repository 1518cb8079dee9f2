"""The OpenAPI document, made true to Kennel's errors.

FastAPI documents a 422 with its own validation-error shape on every route that takes input;
Kennel answers 400 (and 401, 404, ...) with `{"error": {type, message, param}}` instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

__all__ = ["install_openapi"]


class ErrorDetail(BaseModel):
    type: str = Field(description="`invalid_request_error`, `authentication_error`, ...")
    message: str
    param: str | None = Field(description="The field at fault, for validation errors.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


_ERRORS = {
    "400": "Invalid request: bad type, over a limit, unknown field; `param` names the field.",
    "401": "Missing or unknown API key.",
    "403": "Authenticated, but not allowed.",
    "404": "Unknown resource, or one of another organization.",
    "409": "Conflict with the resource's current state.",
    "413": "Request body too large.",
    "415": "A body that is not JSON (`Content-Type` other than `application/json`).",
}
_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(error_schema.pop("$defs", {}))
        schemas["ErrorResponse"] = error_schema
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if not path.startswith("/api/"):
                    continue
                for status, description in _ERRORS.items():
                    if status == "415" and "requestBody" not in operation:
                        continue  # only a route that reads a body refuses one
                    responses.setdefault(status, {"description": description, "content": _CONTENT})
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI documents this override
