"""Before the first migration: the database exists and can be reached, or one clear line says
what to do about it (`DatabaseSetupError`), naming `KENNEL_DATABASE_URL`."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from sqlalchemy.engine import URL

from kennel.core.settings import Settings

__all__ = [
    "DatabaseSetupError",
    "MissingDatabase",
    "database_in_use",
    "describe_database",
    "ensure_database",
]

log = logging.getLogger("kennel.db")


class DatabaseSetupError(Exception):
    """The configured database cannot be used; the message is one line saying why and what to do."""


class MissingDatabase(DatabaseSetupError):
    """The database does not exist, and this command was not asked to create it."""


def describe_database(settings: Settings) -> str:
    """Where the data is, for the start-up banner: never a password."""
    url = settings.database_url_object
    if settings.is_sqlite:
        return f"SQLite {Path(url.database or '').resolve()}"
    return f"PostgreSQL {url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def database_in_use(settings: Settings) -> str:
    """The line the commands print: the URL (password masked) and the setting it comes from."""
    url = settings.database_url_object
    if settings.database_url:
        return f"database {url.render_as_string(hide_password=True)} (KENNEL_DATABASE_URL)"
    return f"database {url.render_as_string()} (in KENNEL_DATA_DIR={settings.data_dir})"


def ensure_database(
    settings: Settings, *, create_sqlite: bool = True, create_postgres: bool = False
) -> bool:
    """Raise `DatabaseSetupError` unless the database can be opened; True when it was created.

    A missing SQLite file is made only with `create_sqlite` (`kennel serve` and `db upgrade`:
    the server's own folder), a missing PostgreSQL database only with `create_postgres`
    (`kennel db upgrade --create-database`): a mistyped name, or a command run from another
    folder, must not quietly start an empty database next to the real one.
    """
    url = settings.database_url_object
    if settings.is_sqlite:
        return _ensure_sqlite(settings, Path(url.database or ""), create_sqlite)
    return _ensure_postgres(url, create_postgres)


def _ensure_sqlite(settings: Settings, path: Path, create: bool) -> bool:
    if not create and not path.exists():
        where = (
            "KENNEL_DATABASE_URL"
            if settings.database_url
            else f"KENNEL_DATA_DIR={settings.data_dir}, from {Path.cwd()}"
        )
        raise MissingDatabase(
            f"no database at {path.resolve()} ({where}): run this where the server runs, or "
            "set KENNEL_DATA_DIR or KENNEL_DATABASE_URL to the server's; `kennel db upgrade` "
            "makes a new one"
        )
    created = not path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()
    except (OSError, sqlite3.Error) as exc:
        raise DatabaseSetupError(
            f"KENNEL_DATABASE_URL: cannot open the SQLite database {str(path)!r} ({exc}); "
            "point it at a file in a folder Kennel may write to"
        ) from None
    return created


def _ensure_postgres(url: URL, create: bool) -> bool:
    import psycopg

    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    user = url.username or "the current user"
    try:
        psycopg.connect(_dsn(url), connect_timeout=10).close()
        return False
    except psycopg.OperationalError as exc:
        reason = _reason(exc)
    if "does not exist" in reason and f'database "{url.database}"' in reason:
        if not create:
            raise MissingDatabase(
                f"KENNEL_DATABASE_URL names database {url.database!r}, which does not exist on "
                f"{where}: check the name, or create it with `kennel db upgrade "
                "--create-database`"
            )
        return _create_postgres_database(url, where, user)
    if "password" in reason or "authentication" in reason or "role" in reason:
        raise DatabaseSetupError(
            f"KENNEL_DATABASE_URL: PostgreSQL at {where} refused user {user!r} ({reason}); "
            "check the user name and password in it"
        )
    raise DatabaseSetupError(
        f"KENNEL_DATABASE_URL: cannot reach PostgreSQL at {where} ({reason}); check the host and "
        "port in it, and that the server is running"
    )


def _create_postgres_database(url: URL, where: str, user: str) -> bool:
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(
            _dsn(url.set(database="postgres")), connect_timeout=10, autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database or "")))
    except psycopg.errors.DuplicateDatabase:
        return False  # another process made it meanwhile
    except psycopg.Error as exc:
        raise DatabaseSetupError(
            f"KENNEL_DATABASE_URL names database {url.database!r}, which does not exist on "
            f"{where}, and {user!r} cannot create it ({_reason(exc)}); create it with "
            f"`createdb -h {url.host or 'localhost'} -p {url.port or 5432} -U <admin> "
            f"{url.database}`, or give {user!r} the CREATEDB privilege"
        ) from None
    log.info("created PostgreSQL database %r on %s", url.database, where)
    return True


def _dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _reason(exc: BaseException) -> str:
    """The server's own words, without psycopg's 'connection failed: ...' preamble."""
    text = " ".join(str(exc).split())
    for marker in ("FATAL: ", "failed: "):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    return text.rstrip(".") or type(exc).__name__
