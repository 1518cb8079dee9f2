"""The `kennel` command: serve, db upgrade, keys create / revoke / list, prune, backup."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from kennel.core.settings import Settings, SettingsError, load_settings, unknown_variables

if TYPE_CHECKING:
    from kennel.db import Database

__all__ = ["app"]

T = TypeVar("T")

app = typer.Typer(help="Kennel: self-hosted AI agent workers.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
mail_app = typer.Typer(help="Mail the SMTP listener took in.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(mail_app, name="mail")


def _settings(**overrides: object) -> Settings:
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        typer.echo(f"kennel: {exc}", err=True)
        raise typer.Exit(2) from None
    for name, close in unknown_variables(os.environ):
        hint = f" (did you mean {close}?)" if close else ""
        typer.echo(f"kennel: warning: {name} is not a setting{hint}; it is ignored", err=True)
    return settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Overrides KENNEL_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides KENNEL_PORT.")] = None,
) -> None:
    """Run the API (and, as they land, the SMTP listener and background work) in one process."""
    # Settings, then the database, before the app's imports (seconds): what is wrong with
    # either is one line, and soon.
    settings = _settings(host=host, port=port)
    from kennel.db.setup import DatabaseSetupError, ensure_database

    try:
        ensure_database(settings)  # a SQLite file is made in its folder; PostgreSQL must exist
    except DatabaseSetupError as exc:
        typer.echo(f"kennel: {exc}", err=True)
        raise typer.Exit(2) from None

    import uvicorn

    from kennel.agents import ModelConfigError
    from kennel.api.app import create_app
    from kennel.api.listeners import PortUnavailable, bind_listeners
    from kennel.api.startup import announce_ready
    from kennel.core.logs import configure_logging

    configure_logging(settings.log_level)
    try:
        application = create_app(settings, announce=True)
    except ModelConfigError as exc:
        typer.echo(f"kennel: {exc}", err=True)
        raise typer.Exit(2) from None
    # Bound before the lifespan (migrations, DBOS): a busy port is this one line, at once.
    try:
        listeners = bind_listeners(settings)
    except PortUnavailable as exc:
        typer.echo(f"kennel: {exc}", err=True)
        raise typer.Exit(2) from None
    application.state.smtp_sockets = listeners.smtp
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_config=None,
        # Set on purpose (README, "Exposing Kennel"): a bound on open connections, so slow or
        # idle clients cannot take every file descriptor; idle keep-alives close after 5 s.
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
        # What still holds a connection this long after SIGTERM is cut (an MCP client's stream).
        timeout_graceful_shutdown=settings.shutdown_seconds,
    )
    stopping: asyncio.Event = application.state.runtime.stopping

    class StoppingServer(uvicorn.Server):
        """uvicorn's server, which also tells the app it is stopping when a signal comes: the
        streams and waiting requests that would hold it up end at once with what they have;
        and says "ready" once it accepts connections (its lifespan runs before that)."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            with contextlib.suppress(RuntimeError):  # no loop running yet: nothing to end
                asyncio.get_running_loop().call_soon_threadsafe(stopping.set)
            super().handle_exit(sig, frame)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                announce_ready(application.state.startup_facts, to_stdout=True)

    StoppingServer(config).run(sockets=listeners.http)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument()] = "head",
    create_database: Annotated[
        bool, typer.Option(help="Create the PostgreSQL database when it does not exist.")
    ] = False,
) -> None:
    """Apply the database migrations (the server also does this when it starts); a new SQLite
    file is made, a new PostgreSQL database only with --create-database."""
    from kennel.db import migrate
    from kennel.db.setup import DatabaseSetupError, ensure_database

    settings = _settings()
    _say_database(settings)
    try:
        if ensure_database(settings, create_sqlite=True, create_postgres=create_database):
            typer.echo("kennel: the database did not exist; created it", err=True)
        migrate(settings, revision)
    except DatabaseSetupError as exc:
        typer.echo(f"kennel: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"database at {revision}")


def _say_database(settings: Settings) -> None:
    """Which database a command works on, on stderr: run from another folder, the default
    SQLite file is another one than the server's."""
    from kennel.db.setup import database_in_use

    typer.echo(f"kennel: {database_in_use(settings)}", err=True)


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` on the configured database, which must exist already (made by `kennel
    serve` or `kennel db upgrade`): a key made in a new empty database is one no server knows."""
    from kennel.db import migrate, open_database
    from kennel.db.setup import DatabaseSetupError, ensure_database

    _say_database(settings)
    try:
        ensure_database(settings, create_sqlite=False)
    except DatabaseSetupError as exc:
        typer.echo(f"kennel: {exc}", err=True)
        raise typer.Exit(2) from None

    async def run() -> T:
        await asyncio.to_thread(migrate, settings, create_sqlite=False)
        db = open_database(settings)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


@keys_app.command("create")
def keys_create(
    email: Annotated[str, typer.Option(help="The user the key acts as; created when new.")],
    org: Annotated[str, typer.Option(help="Organization name; created when new.")] = "default",
    admin: Annotated[bool, typer.Option(help="Make a new user an admin.")] = False,
) -> None:
    """Create an API key; the key itself is the last line printed (and is shown only once)."""
    from kennel.auth.service import issue_key

    if "@" not in email or len(email) > 320:
        typer.echo("kennel: --email must be an e-mail address", err=True)
        raise typer.Exit(2)
    settings = _settings()
    issued = _with_database(
        settings,
        lambda db: issue_key(
            db, email=email, organization=org, role="admin" if admin else "member"
        ),
    )
    org_note = "created" if issued.organization_created else "existing"
    user_note = "created" if issued.user_created else "existing"
    typer.echo(f"organization {issued.organization_id} ({org}, {org_note})")
    typer.echo(f"user {issued.user_id} ({email}, {user_note})")
    typer.echo(f"key id {issued.key_id}; the key is shown only this once:")
    typer.echo(issued.key)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="A key id (key_...) or the key itself.")],
) -> None:
    """Revoke an API key; requests with it get 401 from then on."""
    from kennel.auth.service import revoke_key

    outcome = _with_database(_settings(), lambda db: revoke_key(db, key))
    if outcome == "unknown":
        typer.echo("kennel: no such key", err=True)
        raise typer.Exit(1)
    typer.echo("revoked" if outcome == "revoked" else "already revoked; nothing to do")


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (ids and prefixes, never the keys)."""
    from kennel.auth.repository import list_keys

    async def listing(db: Database) -> list[Any]:
        async with db.read() as r:
            return await list_keys(r)

    rows = _with_database(_settings(), listing)
    typer.echo("KEY ID\tPREFIX\tSTATE\tUSER\tORGANIZATION")
    for row in rows:
        state = "revoked" if row.revoked_at else "active"
        typer.echo(f"{row.key_id}\t{row.prefix}…\t{state}\t{row.email}\t{row.organization}")


@app.command()
def prune(
    days: Annotated[
        int | None,
        typer.Option(min=1, help="Older than this many days (default: KENNEL_RETENTION_DAYS)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Count what would go; delete nothing.")] = False,
) -> None:
    """Delete old tasks, their turns and mail, old deliveries, runs and DBOS's workflows."""
    from kennel.retention import COUNTED, PruneReport, prune

    settings = _settings()
    days = days or settings.retention_days
    if days is None:
        typer.echo("kennel: give --days N or set KENNEL_RETENTION_DAYS", err=True)
        raise typer.Exit(2)

    async def work(db: Database) -> tuple[PruneReport, bool]:
        # After the migration `_with_database` ran: the file exists, DBOS's tables may not.
        store = await asyncio.to_thread(_workflow_store, settings)
        try:
            report = await prune(db, days=days, workflows=store, dry_run=dry_run)
        finally:
            if store is not None:
                store.destroy()
        return report, store is not None

    report, with_dbos = _with_database(settings, work)
    if not with_dbos:
        typer.echo("DBOS's tables are not there yet (the server never ran): none deleted")
    for name in COUNTED:
        typer.echo(f"{name}\t{report.counts[name]}")
    typer.echo(report.summary())
    if report.transactions:
        typer.echo(
            f"{report.transactions} transactions, the longest"
            f" {report.longest_seconds * 1000:.0f} ms"
        )


def _workflow_store(settings: Settings) -> Any:
    """A DBOS client on the database, or None when DBOS has not made its tables there."""
    from dbos import DBOSClient

    try:
        client = DBOSClient(system_database_url=settings.sync_database_url)
    except Exception:
        return None
    try:
        client.list_workflows(limit=1, load_input=False, load_output=False)
    except Exception:  # no tables: a database no server has run on
        client.destroy()
        return None
    return client


@app.command()
def backup(
    path: Annotated[Path, typer.Argument(help="Where the copy goes; must not exist.")],
) -> None:
    """Copy the SQLite database while the server runs (PostgreSQL: use pg_dump; README)."""
    from kennel.db.backup import BackupError, backup_sqlite

    settings = _settings()
    if not settings.is_sqlite:
        typer.echo(
            "kennel: backup copies a SQLite database; this one is PostgreSQL: use pg_dump"
            ' (README, "Backups and upgrades")',
            err=True,
        )
        raise typer.Exit(2)
    source = Path(settings.database_url_object.database or "")
    _say_database(settings)
    try:
        done = backup_sqlite(source, path.resolve())
    except BackupError as exc:
        typer.echo(f"kennel: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"copied to {done.path} ({done.size} bytes, integrity ok, {done.tasks} tasks,"
        f" {done.turns} turns)"
    )


@mail_app.command("list")
def mail_list(
    failed: Annotated[bool, typer.Option(help="Only messages refused or failed.")] = False,
) -> None:
    """The latest messages taken in: what became of each, and why."""
    from kennel.mail.repository import messages

    async def listing(db: Database) -> list[Any]:
        async with db.read() as r:
            return await messages(r, failed_only=failed)

    rows = _with_database(_settings(), listing)
    typer.echo("ID\tRECEIVED\tSTATUS\tFROM\tTO\tREASON")
    for row in rows:
        received = row.received_at.strftime("%Y-%m-%d %H:%M:%S")
        sender = row.sender or row.envelope_from or "<>"
        reason = (row.reason or "").replace("\t", " ")
        typer.echo(f"{row.id}\t{received}\t{row.status}\t{sender}\t{row.recipient}\t{reason}")


@mail_app.command("replay")
def mail_replay(
    message_id: Annotated[str, typer.Argument(help="The message's id (eml_...).")],
) -> None:
    """Take a kept message in again, after a refusal or failure (a running server does it)."""
    from dbos import DBOSClient, EnqueueOptions

    from kennel.core.durable import application_version
    from kennel.mail.storage import mark_for_replay
    from kennel.mail.workflows import MAIL_QUEUE, replay_workflow_id

    settings = _settings()
    if not _with_database(settings, lambda db: mark_for_replay(db, message_id)):
        typer.echo(f"kennel: no message {message_id!r}", err=True)
        raise typer.Exit(1)
    client = DBOSClient(system_database_url=settings.sync_database_url)
    try:
        options: EnqueueOptions = {
            "queue_name": MAIL_QUEUE,
            "workflow_name": "take_in_mail",
            "workflow_id": replay_workflow_id(message_id),
            "app_version": application_version(),
        }
        client.enqueue(options, message_id)
    finally:
        client.destroy()
    typer.echo(f"queued {message_id} to be taken in again")


def main() -> None:  # pragma: no cover - `python -m kennel`
    sys.exit(app())
