"""`GET /api/workers/{workerId}` without FastAPI's per-request machinery.

Clients poll this route to follow a worker, so it is the request Kennel answers most. Measured
in process (`bench/api_floor.py`), FastAPI's routing, dependency solving and response handling
for a route with this one's parameters and the API-key dependency cost 2.4 times a whole
`/healthz`, before the route reads anything. This pure ASGI middleware answers the plain form
of the request (GET, no query string) with the same functions the FastAPI route calls: the
same authentication, reads, rendering and error bodies. Everything else, `?stream=true`
included, goes on to the route, which also keeps the OpenAPI document true.
`tests/workers/test_fast_read.py` holds both to the same status, headers and bytes.
"""

from __future__ import annotations

import re
from typing import Any

from starlette._utils import get_route_path
from starlette.responses import Response

from kennel.auth.dependencies import caller_of
from kennel.errors import ApiError, api_error_response
from kennel.tasks import service as tasks
from kennel.workers import service

__all__ = ["FastWorkerRead"]

_PATH = re.compile(r"/api/workers/([^/]+)")


class FastWorkerRead:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]:
            match = _PATH.fullmatch(get_route_path(scope))  # as the router sees it
        if match is None:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        response: Response
        try:
            # The key lookup too, in the same snapshot: one connection for the whole request.
            async with state.db.reader.snapshot() as read:
                caller = await caller_of(read, _authorization(scope))
                scope.setdefault("state", {})["caller_user_id"] = caller.user_id  # access log
                worker = await service.read_worker(read, caller, match[1])
                answer = await tasks.load_worker_state(read, state.settings, worker)
            body = answer.__pydantic_serializer__.to_json(answer, by_alias=True)
            response = Response(body, media_type="application/json")
        except ApiError as exc:
            response = api_error_response(exc)
        await response(scope, receive, send)


def _authorization(scope: dict[str, Any]) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return None
