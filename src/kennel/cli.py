"""The `kennel` command: serve, db upgrade, keys create / revoke / list."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from kennel.settings import Settings, SettingsError, load_settings

__all__ = ["app"]

T = TypeVar("T")

app = typer.Typer(help="Kennel: self-hosted AI agent workers.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        typer.echo(f"kennel: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Overrides KENNEL_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides KENNEL_PORT.")] = None,
) -> None:
    """Run the API (and, as they land, the SMTP listener and background work) in one process."""
    import uvicorn

    from kennel.agents import ModelConfigError
    from kennel.app import create_app
    from kennel.logs import configure_logging

    settings = _settings(host=host, port=port)
    configure_logging(settings.log_level)
    try:
        application = create_app(settings)
    except ModelConfigError as exc:
        typer.echo(f"kennel: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(application, host=settings.host, port=settings.port, log_config=None)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the database migrations (the server also does this when it starts)."""
    from kennel.db import migrate

    settings = _settings()
    migrate(settings, revision)
    typer.echo(f"database at {revision}")


def _in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from kennel.db import Database, migrate

    async def run() -> T:
        await asyncio.to_thread(migrate, settings)
        db = Database.open(settings)
        try:
            async with db.session() as session:
                result = await work(session)
                await session.commit()
                return result
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
    issued = _in_session(
        settings,
        lambda s: issue_key(s, email=email, organization=org, role="admin" if admin else "member"),
    )
    typer.echo(f"organization {issued.organization_id} ({org})")
    typer.echo(f"user {issued.user_id} ({email})")
    typer.echo(f"key id {issued.key_id}; the key is shown only this once:")
    typer.echo(issued.key)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="A key id (key_...) or the key itself.")],
) -> None:
    """Revoke an API key; requests with it get 401 from then on."""
    from kennel.auth.service import revoke_key

    if not _in_session(_settings(), lambda s: revoke_key(s, key)):
        typer.echo("kennel: no such active key", err=True)
        raise typer.Exit(1)
    typer.echo("revoked")


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (ids and prefixes, never the keys)."""
    from kennel.auth.repository import AuthRepository

    rows = _in_session(_settings(), lambda s: AuthRepository(s).list_keys())
    for key, user, org in rows:
        state = "revoked" if key.revoked_at else "active"
        typer.echo(f"{key.id}\t{key.prefix}…\t{state}\t{user.email}\t{org.name}")


def main() -> None:  # pragma: no cover - `python -m kennel`
    sys.exit(app())
