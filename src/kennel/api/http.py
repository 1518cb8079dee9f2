"""How every route reads its request: JSON bodies bounded in depth before any model sees them.

Python's JSON decoder and the validators after it recurse once per level of nesting, so a body
nested a few thousand levels deep used to end in a `RecursionError` (a 500). Every JSON body is
decoded here instead, and one nested deeper than `MAX_JSON_DEPTH` is a 400.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine, Mapping
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from kennel.api.errors import ApiError, BadRequest
from kennel.workspaces import StoredFile, Workspace

__all__ = [
    "MAX_JSON_DEPTH",
    "KennelRoute",
    "add_routes",
    "decode_json_body",
    "file_download",
    "json_depth",
    "json_response",
    "page_count",
    "read_form",
]

# Objects and arrays inside one another; an output schema may use half of it (`outputSchema`).
MAX_JSON_DEPTH = 64


class BodyError(HTTPException):
    """A body that is not JSON we will read: 400 with the reason (rendered by kennel.api.errors).

    An HTTPException, so that FastAPI's body reading lets it through."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(400, message)
        self.param = param


def json_depth(value: Any, limit: int) -> int:
    """How deeply objects and arrays nest in `value`, counting up to `limit + 1` at most;
    iterative, so no depth can overflow the stack."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def decode_json_body(body: bytes) -> Any:
    """The decoded body, or a 400 for one that is not JSON or nests too deeply."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise BodyError(_too_deep()) from None
    except ValueError:
        raise BodyError("The request body is not valid JSON.") from None
    if json_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        # Name the field, as for any other bad value: the one whose value nests too deeply.
        deep = [
            key
            for key, item in (value.items() if isinstance(value, dict) else ())
            if json_depth(item, MAX_JSON_DEPTH - 1) > MAX_JSON_DEPTH - 1
        ]
        raise BodyError(_too_deep(), param=deep[0] if deep else None)
    if _MAYBE_SURROGATE.search(body):
        _refuse_lone_surrogates(value)
    if _MAYBE_NOT_FINITE.search(body):
        _refuse_non_finite(value)
    return value


# Python's decoder takes `NaN`, `Infinity`, `-Infinity` (not JSON) and overflows `1e999` to
# infinity; stored, they are tokens no JSON reader takes back, and shown they became `null`.
_MAYBE_NOT_FINITE = re.compile(rb"NaN|Infinity|\d[eE]\+?\d{3}|\d{300}")


def _refuse_non_finite(value: Any) -> None:
    items = value.items() if isinstance(value, dict) else [(None, value)]
    for key, item in items:
        if _has_non_finite(item):
            named = isinstance(key, str) and key.isprintable()
            where = f"{key}: a number" if named else "A number"
            raise BodyError(
                f"{where} is not finite (NaN, Infinity or too large); JSON has no such numbers.",
                param=key if named else None,
            )


def _has_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


# A lone surrogate reaches Python's strings only as a `\ud800`-style escape or as the three
# bytes UTF-8 would give it; it cannot be stored or sent on, so it is refused here.
_MAYBE_SURROGATE = re.compile(rb"\\[uU][dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _refuse_lone_surrogates(value: Any) -> None:
    items = value.items() if isinstance(value, dict) else [(None, value)]
    for key, item in items:
        try:
            json.dumps([key, item], ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            where = f"{key}: text" if isinstance(key, str) and key.isprintable() else "Text"
            raise BodyError(
                f"{where} is not valid Unicode (it holds a lone surrogate).",
                param=key if isinstance(key, str) and key.isprintable() else None,
            ) from None


def _too_deep() -> str:
    return f"The request body nests objects and arrays more than {MAX_JSON_DEPTH} levels deep."


async def read_form(request: Request, *, max_files: int, max_fields: int) -> FormData:
    """The request's form: 413 when the body passes its limit while it is read (a chunked body
    has no length to refuse it by first), 400 only when it is malformed."""
    try:
        return await request.form(max_files=max_files, max_fields=max_fields)
    except HTTPException as exc:
        if exc.status_code == 413:
            raise ApiError(413, str(exc.detail)) from None
        raise BadRequest(f"Malformed form body: {exc.detail}") from None
    except Exception as exc:  # python-multipart's own errors on a malformed body
        raise BadRequest(f"Malformed form body: {exc}") from None


class _BoundedRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = decode_json_body(await self.body())
        return self._json


class KennelRoute(APIRoute):
    """FastAPI's route, reading JSON bodies with `decode_json_body`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        known = _query_names(self.dependant)
        reads_body = self.body_field is not None

        async def checked(request: Request) -> Response:
            if request.scope["query_string"]:
                # Unknown query parameters are refused like unknown body fields: a misspelt
                # `?visibilty=private` would otherwise be ignored without a word.
                for name in request.query_params:
                    if name not in known:
                        raise BodyError(f"Unknown query parameter {name!r}.", param=name)
            if reads_body:
                request = _BoundedRequest(request.scope, request.receive)
            return await handler(request)

        return checked


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Put `router`'s routes into the app's own list, as `include_router` used to.

    FastAPI 0.165's `include_router` keeps the router as a branch that is matched again on
    every request: it recounts the branch's routes, matches its candidates twice and saves
    and restores scope keys around each one. Measured in process (`bench/api_floor.py`), a
    route behind the ten branches cost 170 µs of matching against 90 µs in one flat list. A
    router here only carries a prefix, tags and a route class, which `APIRouter` has already
    put into each route, so the flat list serves and documents the same routes.
    """
    if router.on_startup or router.on_shutdown:
        raise ValueError("a router with startup or shutdown events needs include_router")
    app.router.routes.extend(router.routes)


def page_count(total: int, size: int) -> int:
    """How many pages of `size` the `total` items of a list fill: one at least, even empty."""
    return max(1, -(-total // size))


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """`model` as the JSON response, by alias. A route that returns a `Response` skips
    FastAPI's validation and serialization of its `response_model`, which measured here cost
    more than the whole database work of `GET /api/workers/{id}`; the `response_model` still
    documents the route, and `tests/test_openapi.py` holds the answers to it."""
    body = model.__pydantic_serializer__.to_json(model, by_alias=True)
    return Response(body, status_code=status_code, media_type="application/json")


def file_download(
    workspace: Workspace, file: StoredFile, *, headers: Mapping[str, str] | None = None
) -> StreamingResponse:
    """A workspace file as an attachment, streamed from the database a chunk at a time (a
    replace meanwhile cuts it short of its Content-Length: see `Workspace.chunks`)."""
    name = file.path.rpartition("/")[2]
    quoted = quote(name)
    disposition = (
        f"attachment; filename*=utf-8''{quoted}"
        if quoted != name
        else f'attachment; filename="{name}"'
    )
    return StreamingResponse(
        workspace.chunks(file),
        media_type=file.media_type,
        headers={
            "Content-Length": str(file.size),
            "Content-Disposition": disposition,
            "Last-Modified": format_datetime(file.updated_at, usegmt=True),
            "ETag": f'"{file.id}"',
            **(headers or {}),
        },
    )


def _query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route and its dependencies take."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)
