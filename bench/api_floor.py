"""What the framework alone costs: CPU per request, in process, of routes that do less and less.

Hand-run, not a test: `.venv/bin/python bench/api_floor.py [--requests 3000]`; with
`FLOOR_DATABASE_URL=postgresql://.../<an empty database>` it measures on PostgreSQL instead.

`bench/api.py` holds the authenticated read to half the rate of `/healthz`. This shows how
much of that budget goes before Kennel's own work: it calls the ASGI app directly (no HTTP, no
client), one request at a time, on a fresh database with DBOS off, and prints the CPU
per request of

1. `GET /healthz`;
2. the same handler registered after Kennel's routes (route matching walks the list);
3. a route with the read's path and query parameters, answering a constant;
4. the same with the API-key dependency (one indexed SELECT);
5. the real `GET /api/workers/{id}`;
6. a POST that validates a `WorkerCreate` body and answers a constant; the same with the API
   key; and with one write (`db.write()`: BEGIN IMMEDIATE, an UPDATE that matches nothing,
   COMMIT);
7. the real `POST /api/workers`,

each as a ratio to (1). Over HTTP, uvicorn adds a roughly fixed cost per request that narrows
the ratios, but a route whose floor is already past half of `/healthz` here cannot reach half
of it through HTTP either.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import update

from kennel.auth import CallerDep
from kennel.auth.keys import generate_key
from kennel.models import users
from kennel.workers.schemas import WorkerCreate

KEY = generate_key()


def _scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {KEY}".encode())]
    if body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }


async def _call(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    answer: dict[str, Any] = {"body": b""}
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(_scope(method, path, body), receive, send)
    return answer["status"], answer["body"]


async def _run(requests: int) -> None:
    from kennel.api.app import create_app

    app = create_app(durable=False)

    @app.get("/floor/bare")
    async def bare() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/floor/params/{workerId}")
    async def params(
        workerId: str, request: Request, stream: Annotated[bool, Query()] = False
    ) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/floor/auth/{workerId}")
    async def auth(
        workerId: str,
        request: Request,
        caller: CallerDep,
        stream: Annotated[bool, Query()] = False,
    ) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.post("/floor/body")
    async def body_only(body: WorkerCreate) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.post("/floor/body-auth")
    async def body_auth(body: WorkerCreate, caller: CallerDep) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    no_op_update = update(users).where(users.c.id == "").values(role=users.c.role)

    @app.post("/floor/body-auth-write")
    async def body_auth_write(
        body: WorkerCreate, request: Request, caller: CallerDep
    ) -> JSONResponse:
        async with request.app.state.runtime.db.write() as w:
            await w.execute(no_op_update)
        return JSONResponse({"status": "ok"})

    async with app.router.lifespan_context(app):
        create = json.dumps({"instructions": "Be brief.", "title": "Bench"}).encode()
        status, body = await _call(app, "POST", "/api/workers", create)
        assert status == 201, body
        worker_id = json.loads(body)["id"]
        cases = [
            ("GET /healthz", "GET", "/healthz", b""),
            ("same, matched last", "GET", "/floor/bare", b""),
            ("+ path and query params", "GET", f"/floor/params/{worker_id}", b""),
            ("+ API key", "GET", f"/floor/auth/{worker_id}", b""),
            ("GET /api/workers/{id}", "GET", f"/api/workers/{worker_id}", b""),
            ("POST, body model", "POST", "/floor/body", create),
            ("+ API key", "POST", "/floor/body-auth", create),
            ("+ one db.write()", "POST", "/floor/body-auth-write", create),
            ("POST /api/workers", "POST", "/api/workers", create),
        ]
        base = None
        print(f"{'route':28s} {'us CPU/request':>15s} {'ratio':>7s}")
        for name, method, path, payload in cases:
            for _ in range(min(300, requests)):  # warm caches and pools
                await _call(app, method, path, payload)
            began = time.process_time()
            for _ in range(requests):
                status, body = await _call(app, method, path, payload)
            cost = (time.process_time() - began) / requests
            assert status in (200, 201), body
            base = base or cost
            print(f"{name:28s} {cost * 1e6:15.0f} {base / cost:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per route")
    opts = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="kennel-floor-")
    os.environ.update(
        KENNEL_DATABASE_URL=os.environ.get(
            "FLOOR_DATABASE_URL", f"sqlite:///{folder}/kennel.sqlite3"
        ),
        KENNEL_DATA_DIR=folder,
        KENNEL_BOOTSTRAP_API_KEY=KEY,
        KENNEL_LOG_LEVEL="WARNING",
    )
    from kennel.core.logs import configure_logging

    configure_logging("WARNING")
    asyncio.run(_run(opts.requests))


if __name__ == "__main__":
    main()
