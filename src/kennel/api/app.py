"""`create_app()`: the FastAPI application, its lifespan, middleware and error handlers."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.routing import Route

from kennel import __version__
from kennel.agents import build_model, is_offline
from kennel.agents.agent import instrument_turns
from kennel.api.docs import install_docs
from kennel.api.errors import install_error_handlers
from kennel.api.http import add_routes
from kennel.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from kennel.api.openapi import install_openapi
from kennel.api.startup import announce_ready, startup_facts
from kennel.api.unavailable import RETRY_AFTER_SECONDS, transient_cause
from kennel.auth.dependencies import VerifiedKeys
from kennel.auth.service import bootstrap
from kennel.core import runtime
from kennel.core.background import BackgroundService
from kennel.core.durable import Queue
from kennel.core.durable import launch as launch_dbos
from kennel.core.durable import shutdown as shutdown_dbos
from kennel.core.settings import Settings, load_settings
from kennel.core.takeover import Takeover
from kennel.core.tracing import configure_tracing, flush_traces
from kennel.core.wakeup import watching_lag
from kennel.dashboard import install_dashboard
from kennel.db import head_revision, migrate, open_database, schema_revision
from kennel.mail import answers as mail_answers
from kennel.mail import workflows as mail_workflows
from kennel.mail.endpoints import router as mail_router
from kennel.mail.front_door import FrontDoor
from kennel.mail.workflows import mail_queue, queue_stranded_intakes
from kennel.mcp import MCP_METHODS, MCP_PATH, McpDoor
from kennel.mcp_servers.endpoints import router as mcp_servers_router
from kennel.metrics.http import HttpMetricsMiddleware
from kennel.metrics.scrape import METRICS_PATH, install_metrics
from kennel.retention import periodic as retention_periodic
from kennel.retention.periodic import RetentionService
from kennel.schedules.dispatcher import Dispatcher
from kennel.schedules.endpoints import router as schedules_router
from kennel.tasks import workflows as tasks_workflows
from kennel.tasks.endpoints import router as tasks_router
from kennel.tasks.endpoints import worker_router as worker_state_router
from kennel.tasks.starting import queue_stranded_turns
from kennel.tasks.workflows import finish_abandoned_turns, turn_queue
from kennel.webhooks import workflows as webhooks_workflows
from kennel.webhooks.endpoints import router as webhooks_router
from kennel.workers.endpoints import router as workers_router
from kennel.workspaces.disk import import_disk_workspaces

__all__ = ["PUBLIC_PATHS", "create_app"]

log = logging.getLogger("kennel")

# The only routes served without an API key; a test walks app.routes against this list.
# The dashboard's pages need a signed-in session instead, except its sign-in page and files.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/docs/assets", "/openapi.json"}
    | {"/login", "/static"}
    | {METRICS_PATH}  # KENNEL_METRICS_TOKEN instead, when set
)

_OFFLINE_BANNER = (
    "KENNEL_MODEL is 'offline': workers answer with Kennel's deterministic offline model, "
    "not a real LLM. Set KENNEL_MODEL (e.g. openai:gpt-4.1) for real answers."
)


def settle_heap() -> None:
    """Leave what start-up made out of the garbage collector's full collections.

    Modules, schemas, routes and pools made at start-up live as long as the process, yet
    every full collection traversed them: under load a server paused its loop for up to
    186 ms at a time (`bench/overload.py`), which every request and turn waited out. Frozen,
    they are never traversed again; what requests and turns make is still collected."""
    gc.collect()
    gc.freeze()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    rt: runtime.Runtime = app.state.runtime
    settings = rt.settings
    await asyncio.to_thread(migrate, settings)
    await bootstrap(rt.db, key=settings.bootstrap_api_key, admin_email=settings.admin_email)
    await import_disk_workspaces(rt.db, settings.data_dir)  # what earlier versions kept on disk
    if is_offline(settings.model):
        log.warning("*" * 20 + " " + _OFFLINE_BANNER + " " + "*" * 20)
    durable = app.state.durable
    listener = (
        FrontDoor(rt, sockets=app.state.smtp_sockets) if durable and settings.smtp_enabled else None
    )
    services: list[BackgroundService] = []
    if durable:
        runtime.install(rt)
        await launch_dbos(settings, workflows=WORKFLOWS, queues=_queues(settings))
        app.state.durable_running = True
        await finish_abandoned_turns(rt)
        await queue_stranded_turns(rt, grace=timedelta(0))
        sweeps = [queue_stranded_turns, *([queue_stranded_intakes] if listener else [])]
        takeover = Takeover(rt, sweeps=sweeps)
        wanted: list[BackgroundService] = [
            takeover,
            Dispatcher(rt),
            *([listener] if listener else []),
            *([RetentionService(rt, settings.retention_days)] if settings.retention_days else []),
        ]
        for service in wanted:
            await service.start()
            services.append(service)
    app.state.mail_listener = listener
    facts = app.state.startup_facts = await startup_facts(
        rt, listener.address if listener else None
    )
    if not app.state.announce:  # `kennel serve` says it once its HTTP port listens too
        announce_ready(facts, to_stdout=False)
    settle_heap()
    try:
        async with app.state.mcp.running(), watching_lag():
            yield
    finally:
        if durable:
            for service in reversed(services):
                await service.stop()
            app.state.durable_running = False
            shutdown_dbos()
            if takeover in services:  # only now: nothing of this process runs any more
                await takeover.release()
            runtime.uninstall()
        await rt.db.dispose()
        await asyncio.to_thread(flush_traces)  # the last spans, DBOS's and the requests' done


# Every module that declares DBOS workflows: DBOS must know them all before it launches.
WORKFLOWS = (
    tasks_workflows,
    webhooks_workflows,
    mail_workflows,
    mail_answers,
    retention_periodic,
)


def _queues(settings: Settings) -> list[Queue]:
    return [turn_queue(settings), mail_queue(settings)]


def create_app(
    settings: Settings | None = None, *, durable: bool = True, announce: bool = False
) -> FastAPI:
    """Build the app; the database is migrated by its lifespan.

    `durable=False` leaves DBOS (task runs) off: for tools and tests that only need the API
    of a second app in a process where another one runs tasks. `announce`: the caller says
    "ready" (`kennel serve`, once uvicorn listens), from `app.state.startup_facts`.
    """
    settings = settings or load_settings()
    # Before the app (FastAPI's request spans use the provider it finds), before DBOS launches
    # (it takes the provider then) and before any turn runs.
    if configure_tracing(settings.executor_id):
        instrument_turns(include_content=settings.trace_content)
    app = FastAPI(
        title="Kennel",
        version=__version__,
        summary="Self-hosted AI agent workers, speaking the Handinger REST API.",
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
        # FastAPI's own request spans (`POST /api/tasks`, the route template; the caller's
        # `traceparent` continued), on when a tracer provider is installed. Without its spans
        # per dependency, endpoint and serialization: three more for every request.
        telemetry={"operation_spans": False},
    )
    # The model is built here, not in the lifespan, so a bad KENNEL_MODEL fails before anything
    # starts; the database is only opened (no connection is made until the lifespan).
    model = build_model(
        settings.model,
        offline_delay_seconds=settings.offline_model_delay_seconds,
        offline_trace_file=settings.offline_model_trace_file,
    )
    app.state.runtime = runtime.Runtime(settings, open_database(settings), model)
    app.state.verified_keys = VerifiedKeys()
    app.state.durable = durable
    app.state.durable_running = False
    app.state.head_revision = head_revision()
    app.state.announce = announce
    app.state.smtp_sockets = None  # bound already by `kennel serve` (api/listeners.py)
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)

    def limits() -> tuple[int, int]:
        now = app.state.runtime.settings
        return now.max_json_body_bytes, now.max_upload_request_bytes

    app.add_middleware(BodyLimitMiddleware, limits=limits)
    app.add_middleware(HttpMetricsMiddleware)  # inside the next: it sees unhandled errors
    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", tags=["Operations"])
    async def healthz() -> JSONResponse:
        """Liveness for load balancers (no auth): the process answers."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["Operations"])
    async def readyz() -> JSONResponse:
        """Readiness (no auth): the database answers within 2 s, its schema is this code's,
        and durable work (DBOS) runs. 503 with each failed check's cause otherwise."""
        checks = await _readiness(app)
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
            headers=None if ready else {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    install_metrics(app)
    add_routes(app, workers_router)
    add_routes(app, worker_state_router)
    add_routes(app, tasks_router)
    add_routes(app, webhooks_router)
    add_routes(app, schedules_router)
    add_routes(app, mail_router)
    add_routes(app, mcp_servers_router)
    # `/mcp` takes the same API keys as `/api` (checked by the door), and is no REST operation:
    # a plain route, out of the OpenAPI document.
    app.state.mcp = McpDoor(app.state.runtime)
    app.router.routes.append(Route(MCP_PATH, app.state.mcp, methods=list(MCP_METHODS)))
    install_dashboard(app)
    return app


async def _readiness(app: FastAPI) -> dict[str, str]:
    rt: runtime.Runtime = app.state.runtime
    checks = {"database": "ok", "migrations": "ok", "durable": "ok"}
    try:
        revision = await asyncio.wait_for(schema_revision(rt.db), 2)
    except TimeoutError:
        checks["database"] = "The database did not answer within 2 s"
        checks["migrations"] = "unknown"
    except Exception as exc:
        checks["database"] = transient_cause(exc) or f"{type(exc).__name__}: {exc}"
        checks["migrations"] = "unknown"
    else:
        head = app.state.head_revision
        if revision != head:
            checks["migrations"] = f"the database is at {revision}, this code at {head}"
    if app.state.durable and not app.state.durable_running:
        checks["durable"] = "DBOS is not running (starting or stopping)"
    return checks
