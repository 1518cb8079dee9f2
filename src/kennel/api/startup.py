"""What `kennel serve` says once it has started: where everything is, in one block."""

from __future__ import annotations

import logging
import sys
from typing import Any

import httpx

from kennel import __version__
from kennel.agents import is_offline
from kennel.auth import repository as auth_repo
from kennel.auth.keys import hash_key
from kennel.core.runtime import Runtime
from kennel.db.setup import describe_database

__all__ = ["announce_ready", "startup_block", "startup_facts"]

log = logging.getLogger("kennel")


async def startup_facts(rt: Runtime, smtp: tuple[str, int] | None = None) -> dict[str, Any]:
    """The facts of the block, also logged as the fields of the `ready` line."""
    settings = rt.settings
    key = settings.bootstrap_api_key
    if not key:
        bootstrap = "none (create keys with `kennel keys create`)"
    else:
        async with rt.db.read(snapshot=False) as r:
            active = await auth_repo.owner_of_key(r, hash_key(key)) is not None
        bootstrap = (
            "active (KENNEL_BOOTSTRAP_API_KEY)"
            if active
            else "not used: the database had keys already"
        )
    model = (
        "offline: Kennel's deterministic model, not a real LLM (set KENNEL_MODEL)"
        if is_offline(settings.model)
        else settings.model
    )
    base_url = getattr(rt.model, "base_url", None)
    if isinstance(base_url, str) and base_url:
        base_url = base_url.rstrip("/")
        problem = await _unreachable(base_url)
        model += f" at {base_url}"
        if problem:
            model += f" (not reachable now: {problem})"
            log.warning(
                "the model server at %s cannot be reached (%s): turns will fail with "
                "model_unavailable until it can",
                base_url,
                problem,
            )
    return {
        "version": __version__,
        "listening": f"{settings.host}:{settings.port}",
        "publicUrl": settings.base_url,
        "database": describe_database(settings),
        "dataDir": str(settings.data_dir.resolve()),
        "model": model,
        "bootstrapKey": bootstrap,
        "apiReference": f"{settings.base_url}/docs",
        "smtp": f"{smtp[0]}:{smtp[1]} (mail to <worker>@{settings.mail_domain})" if smtp else "off",
        "relay": settings.smtp_relay or "none: e-mail is not answered (KENNEL_SMTP_RELAY)",
        "webSearch": (
            f"SearXNG at {settings.search_url}"
            if settings.search_url
            else "off: no web_search tool (set KENNEL_SEARCH_URL to a SearXNG instance)"
        ),
    }


async def _unreachable(base_url: str) -> str | None:
    """Why nothing answers HTTP at the model's base URL, or None (any answer counts: the check
    sends no key, so a 401 or 404 still means a server is there)."""
    try:
        async with httpx.AsyncClient(timeout=3) as client:
            await client.get(base_url + "/models")
    except httpx.HTTPError as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def startup_block(facts: dict[str, Any]) -> str:
    rows = [
        ("listening on", facts["listening"]),
        ("public URL", facts["publicUrl"]),
        ("API reference", facts["apiReference"]),
        ("database", facts["database"]),
        ("data folder", facts["dataDir"]),
        ("model", facts["model"]),
        ("web search", facts["webSearch"]),
        ("bootstrap key", facts["bootstrapKey"]),
        ("SMTP listener", facts["smtp"]),
        ("SMTP relay", facts["relay"]),
    ]
    lines = [f"Kennel {facts['version']} is ready", *(f"  {k:<14}{v}" for k, v in rows)]
    return "\n".join(lines) + "\n"


def announce_ready(facts: dict[str, Any], *, to_stdout: bool) -> None:
    """The `ready` log line, and for people the block on stdout (stderr carries the log)."""
    log.info("kennel %s ready", __version__, extra=facts)
    if to_stdout:
        sys.stdout.write(startup_block(facts))
        sys.stdout.flush()
