"""Fixtures shared by the whole suite: one database per backend, the app, a client, callers.

Every test that touches the database runs on SQLite and on PostgreSQL. PostgreSQL needs
KENNEL_TEST_POSTGRES_URL (a server URL whose user may create databases); without it those
tests skip with a message. `.ci/run` sets it, so in CI an unreachable server fails the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic_ai.models import Model
from sqlalchemy import make_url

from kennel.api.app import create_app
from kennel.core.settings import Settings
from tests.factories import Member, make_member

POSTGRES_ENV = "KENNEL_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty database of each backend for this test session."""
    with fresh_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@contextlib.contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """A new empty database: a SQLite file in `folder`, or a scratch PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'kennel.sqlite3'}"
        return
    with fresh_postgres_database() as url:
        yield url


class fresh_postgres_database:
    """Create a uniquely named database on the test server, drop it afterwards."""

    def __enter__(self) -> str:
        server = os.environ.get(POSTGRES_ENV)
        if not server:
            pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL variant skipped (.ci/run sets it)")
        import psycopg

        self.admin_url = make_url(server).set(drivername="postgresql")
        self.name = f"kennel_test_{secrets.token_hex(4)}"
        with psycopg.connect(self._dsn(self.admin_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return self.admin_url.set(database=self.name).render_as_string(hide_password=False)

    def __exit__(self, *exc: object) -> None:
        import psycopg

        with psycopg.connect(self._dsn(self.admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    @staticmethod
    def _dsn(url) -> str:  # type: ignore[no-untyped-def]
        return url.render_as_string(hide_password=False)


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        public_url="http://kennel.test",
        mail_domain="mail.kennel.test",
        smtp_port=0,  # a free port: many apps and servers run at once in the suite
        # The queue tests start the limit and two more turns: a small limit keeps them quick.
        # Apps and servers of both test processes share one PostgreSQL (max_connections 100).
        **{  # type: ignore[arg-type]
            "turn_concurrency": 8,
            "database_connections": 18,
            **overrides,
        },
    )


@pytest_asyncio.fixture(scope="session")
async def app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    """The real app on that database, its lifespan (migrations included) run once."""
    application = create_app(make_settings(database_url, tmp_path_factory.mktemp("data")))
    async with application.router.lifespan_context(application):
        _keep_dbos_on_this_loop()
        yield application


def _keep_dbos_on_this_loop() -> None:
    """Run every workflow DBOS dequeues on this loop, between tests too, as in a server.

    DBOS submits a dequeued async workflow to the loop it was launched on only while that loop
    is running, else to a loop of its own (`BackgroundEventLoop.target_loop`). A server's loop
    always runs; pytest-asyncio's runs only during a test. A turn dequeued between two tests
    then ran on DBOS's loop with PostgreSQL connections made on this one ("attached to a
    different loop"), which broke the pool for the tests after it. Submitted here, it waits
    for the next test to run the loop.
    """
    import dbos._dbos as dbos_internals

    loop = asyncio.get_running_loop()
    instance = dbos_internals._dbos_global_instance
    assert instance is not None, "DBOS is launched by the app's lifespan"
    instance._background_event_loop.target_loop = lambda: loop  # type: ignore[method-assign]  # see above


@pytest.fixture
def reconfigure(app: FastAPI) -> Iterator[Callable[..., None]]:
    """Change the running app's model or settings for one test; restored afterwards.

    `reconfigure(model=OfflineModel(delay_seconds=1), allow_private_fetch=True)`.
    """
    rt = app.state.runtime
    saved = (rt.model, rt.settings)

    def apply(*, model: Model | None = None, **settings: object) -> None:
        if model is not None:
            rt.model = model
        if settings:
            rt.settings = rt.settings.model_copy(update=settings)

    yield apply
    rt.model, rt.settings = saved


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kennel.test") as c:
        yield c


@pytest_asyncio.fixture
async def member(app: FastAPI) -> Member:
    """A user in an organization of its own, with an API key."""
    return await make_member(app)


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each backend that no other test uses, for tests of start-up behaviour."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    if not os.environ.get(POSTGRES_ENV):
        terminalreporter.write_line(
            f"PostgreSQL variants were skipped: {POSTGRES_ENV} is not set (.ci/run sets it)."
        )
