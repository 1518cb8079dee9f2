"""Kennel's configuration: one object, every field a `KENNEL_*` environment variable."""

from __future__ import annotations

import difflib
import os
import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError
from sqlalchemy.engine import URL, make_url

from kennel.core.parsers import (
    DEFAULT_RETRY_SCHEDULE,
    IPNetwork,
    parse_host_port,
    parse_networks,
    parse_retry_schedule,
    parse_timezone,
)

__all__ = [
    "BudgetCaps",
    "ConnectionShares",
    "Settings",
    "SettingsError",
    "default_executor_id",
    "load_settings",
    "unknown_variables",
]

_DEFAULT_DATA_DIR = Path("data")


def default_executor_id() -> str:
    """`<host>-<pid>-<random>`: unique per process, and says where it ran."""
    return f"{socket.gethostname()[:60]}-{os.getpid()}-{secrets.token_hex(3)}"


class SettingsError(Exception):
    """A setting has a wrong value; the message is one line naming it."""


class BudgetCaps(BaseModel):
    """What one turn may spend; `None` means no cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: int | None = Field(None, ge=1, description="Model requests.")
    tokens: int | None = Field(None, ge=1, description="Input plus output tokens.")
    seconds: float | None = Field(None, gt=0, description="Wall time.")
    output_tokens: int | None = Field(
        None, ge=1, description="Output tokens of one model request (its `max_tokens`)."
    )


class Settings(BaseSettings):
    """Every setting of the server; the environment variable is the field name, prefixed."""

    model_config = SettingsConfigDict(env_prefix="KENNEL_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        _DEFAULT_DATA_DIR,
        description=(
            "Folder for the default SQLite database. Workspace files are in the database; those"
            " an earlier version kept in <data dir>/workspaces/ are moved into it at start-up."
        ),
    )
    database_url: str = Field(
        "",
        description=(
            "`sqlite:///path` or `postgresql://user@host/db`; Kennel picks its own drivers. "
            "Empty: a SQLite file `kennel.sqlite3` in the data folder."
        ),
    )
    public_url: str | None = Field(
        None,
        description=(
            "Base of every `url` field (the dashboard and file downloads). Unset: the address "
            "`kennel serve` listens on (`http://localhost:<port>` when it listens on all "
            "addresses)."
        ),
    )
    host: str = Field("127.0.0.1", description="Address `kennel serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `kennel serve` listens on.")
    bootstrap_api_key: str | None = Field(
        None,
        description=(
            "With no API key in the database at start-up: create a default organization "
            "and an admin user holding this key."
        ),
        repr=False,
    )
    admin_email: str = Field(
        "admin@example.com", description="E-mail of the admin user the bootstrap key belongs to."
    )
    model: str = Field(
        "offline",
        description=(
            "The LLM, in pydantic-ai's `provider:model` form (`openai:gpt-4.1`, "
            "`anthropic:claude-sonnet-4-5`, `ollama:llama3.2`); `offline`: a deterministic "
            "model that needs no key and no network."
        ),
    )
    offline_model_delay_seconds: float = Field(
        0.0,
        ge=0,
        description="Pause of the offline model before each answer (tests of long turns).",
    )
    offline_model_trace_file: Path | None = Field(
        None, description="Append a line per offline-model request to this file (debugging, tests)."
    )
    search_url: str | None = Field(
        None,
        description=(
            "A SearXNG instance (its JSON format enabled) for the agent's `web_search` tool; "
            "unset, the tool is not offered."
        ),
    )
    secret_key: SecretStr | None = Field(
        None,
        description=(
            "Encrypts secrets Kennel must read back (the headers of MCP servers). Unset, a key"
            " kept in the database is used, so a copy of the database holds both: set it and"
            " keep it apart (a long random string; changing it makes stored headers unreadable)."
        ),
    )
    allow_private_fetch: bool = Field(
        False,
        description="Let the web fetch tool read loopback and private addresses (dev, tests).",
    )
    task_wait_seconds: float = Field(
        40.0,
        ge=0,
        description=(
            "How long `POST /api/tasks` without `stream` waits for the turn before answering "
            "with `running: true` (well under the official SDKs' 60 s, after which they send "
            "the request again); an MCP tool call waits as long before answering with the "
            "task id to fetch the answer by."
        ),
    )
    mcp_tools_poll_seconds: float = Field(
        5.0,
        gt=0,
        description=(
            "How often `/mcp` looks whether a session's tools changed (a worker created, "
            "deleted or edited) to send it `notifications/tools/list_changed`."
        ),
    )
    instructions_wait_seconds: float = Field(
        20.0,
        gt=0,
        description=(
            "How long `POST /api/workers` with only a `prompt` waits for the model to write the "
            "instructions; past it the prompt is the instructions."
        ),
    )
    # A turn mostly waits on the model: 500 turns at once on a model that takes 2 s a request
    # finished in 258 s with 8, 27 s with 128 and 21 s with 256 (then the CPU is the limit, at
    # 100-150 KiB a waiting turn); bench/tasks.py, phase 5.
    turn_concurrency: int = Field(
        256,
        ge=1,
        description=(
            "Turns one process runs at once; the rest wait in the queue. Lower it when the"
            " model provider's rate limit is the tighter bound."
        ),
    )
    queue_polling_seconds: float = Field(
        1.0,
        gt=0,
        description=(
            "How often a process looks for turns queued by other processes (mail: five times"
            " as long); work queued by this process, or taken over from a dead one, starts at"
            " once."
        ),
    )
    executor_id: str = Field(
        default_factory=lambda: default_executor_id(),
        description=(
            "Id of this process in DBOS, unique by default (`<host>-<pid>-<random>`). Live"
            " processes take over the unfinished work of one that stopped heart-beating,"
            " whatever id it had; a fixed id also lets a restart resume its own work at once."
        ),
    )
    heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description=(
            "How often a process says it is alive, and looks for processes that stopped doing"
            " so (their turns, deliveries, mail and firings are taken over)."
        ),
    )
    takeover_after_seconds: float = Field(
        30.0,
        gt=0,
        description=(
            "Silence after which a process is taken for dead and its unfinished work is taken"
            " over (at once for a process of this host whose pid is gone)."
        ),
    )
    database_connections: int = Field(
        30,
        ge=8,
        description=(
            "PostgreSQL: connections one process holds at most, Kennel's and DBOS's together"
            " (a third for DBOS); idle ones close after a minute. Size PostgreSQL's"
            " `max_connections` to this times the processes, plus what else connects."
        ),
    )
    max_file_bytes: int = Field(
        25 * 1024 * 1024, ge=1, description="Largest file in a workspace (upload or agent write)."
    )
    max_upload_request_bytes: int = Field(
        100 * 1024 * 1024, ge=1024, description="Largest multipart body of `POST /api/tasks`."
    )
    budget_caps: dict[str, BudgetCaps] = Field(
        default_factory=dict,
        description=(
            "Overrides of the per-turn caps of each budget, as JSON, e.g. "
            '`{"low": {"requests": 2, "tokens": 5000, "seconds": 30}}`.'
        ),
    )
    mail_domain: str = Field("kennel.localhost", description="Domain of worker e-mail addresses.")
    max_json_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest JSON request body accepted (413 past it)."
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description=(
            "Open HTTP connections and requests one process serves at once; past it, 503 "
            "(uvicorn's `limit_concurrency`). Streams count while open."
        ),
    )
    shutdown_seconds: int = Field(
        10,
        ge=1,
        description=(
            "How long a stopping server (SIGTERM) may take: open streams and waiting requests"
            " end at once with what they have, then connections get this long to close."
        ),
    )
    log_level: str = Field("INFO", description="Log level: DEBUG, INFO, WARNING or ERROR.")
    min_interval_seconds: int = Field(
        60, ge=1, description="Smallest `intervalSeconds` of an interval schedule."
    )
    schedule_timezone: str = Field(
        "UTC", description="IANA zone cron schedules are read in when they name none."
    )
    max_schedules_per_worker: int = Field(
        100, ge=1, description="Schedules one worker may have at once (cancelled ones aside)."
    )
    schedule_poll_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description=(
            "How often a server looks for schedules made by another process; its own wake it "
            "at once."
        ),
    )
    webhook_timeout_seconds: float = Field(
        15.0,
        gt=0,
        le=300,
        description="Time for one webhook delivery attempt: DNS, connect, TLS, send, read.",
    )
    allow_private_webhooks: bool = Field(
        False,
        description=(
            "Let webhooks reach loopback, private and link-local addresses, and plain http "
            "(development, tests)."
        ),
    )
    webhook_allowed_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        (),
        description=(
            "Comma-separated CIDRs webhooks may reach although they are private "
            "(`10.1.0.0/16,fd00::/8`): services on your own network. Plain http stays refused."
        ),
    )
    webhook_retry_schedule: Annotated[tuple[float, ...], NoDecode] = Field(
        DEFAULT_RETRY_SCHEDULE,
        description=(
            "Wait before each delivery attempt, the first included (`0,5s,5m,30m,2h,5h,10h,"
            "10h`, Svix's): N entries, N attempts. Each wait varies by up to 10 %."
        ),
    )
    webhook_rotation_grace_seconds: float = Field(
        24 * 3600.0,
        ge=0,
        description=(
            "After `regenerate-token`, deliveries are signed with the old token too for this long."
        ),
    )
    smtp_enabled: bool = Field(True, description="Run the inbound SMTP listener.")
    smtp_host: str = Field(
        "127.0.0.1",
        description="Address the SMTP listener binds to (loopback: behind your own mail server).",
    )
    smtp_port: int = Field(
        2525, ge=0, le=65535, description="Port of the SMTP listener (0: any free port)."
    )
    smtp_hostname: str | None = Field(None, description="Name the listener greets with.")
    smtp_tls_cert: Path | None = Field(None, description="Certificate file: offer STARTTLS.")
    smtp_tls_key: Path | None = Field(None, description="Key file of `KENNEL_SMTP_TLS_CERT`.")
    mail_max_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest message accepted (`SIZE`; 552 past it)."
    )
    mail_sender_auth: Literal["none", "upstream", "verify"] = Field(
        "none",
        description=(
            "How a message's `From:` is trusted: `none` (envelope and `From:` must both be "
            "allowed; for a listener behind your own mail server), `upstream` (the "
            "`Authentication-Results` of your MTA, `KENNEL_MAIL_AUTHSERV_ID`), `verify` (DKIM "
            "and DMARC checked here)."
        ),
    )
    mail_authserv_id: str | None = Field(
        None, description="Your MTA's authserv-id, for `KENNEL_MAIL_SENDER_AUTH=upstream`."
    )
    mail_trusted_received: int = Field(
        1,
        ge=0,
        le=10,
        description=(
            "How many `Received:` headers your own mail system adds: only "
            "`Authentication-Results` above them are trusted."
        ),
    )
    smtp_relay: str | None = Field(
        None, description="`host:port` of the relay that sends answers (none: no answers)."
    )
    smtp_relay_username: str | None = Field(None, description="Relay login.")
    smtp_relay_password: SecretStr | None = Field(None, description="Relay password.")
    smtp_relay_starttls: bool = Field(False, description="STARTTLS to the relay (port 587).")
    smtp_relay_tls: bool = Field(False, description="TLS to the relay from the start (port 465).")
    smtp_relay_timeout: float = Field(30.0, gt=0, description="Seconds for one send.")
    session_idle_seconds: int = Field(
        12 * 3600,
        ge=60,
        le=30 * 24 * 3600,
        description=(
            "A dashboard sign-in ends after this long without a request (and 30 days after it "
            "began, however active)."
        ),
    )

    # -- metrics (GET /metrics) -------------------------------------------------------------
    metrics_token: SecretStr | None = Field(
        None,
        description=(
            "When set, `GET /metrics` asks for `Authorization: Bearer <this>` (401 otherwise). "
            "Unset, it is open like `/healthz`: on a port only your monitoring reaches."
        ),
        repr=False,
    )

    @field_validator("metrics_token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        # Empty, it would be a token anyone "knows"; unset is the way to leave /metrics open.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty (unset it to leave /metrics open)")
        return value

    # --- Data over time (retention) ---
    retention_days: int | None = Field(
        None,
        ge=1,
        description=(
            "Delete tasks idle for this many days (with their turns and mail), older deliveries,"
            " schedule runs, idempotency keys and DBOS's finished workflows, once an hour"
            " (unset: nothing is ever deleted; `kennel prune` does it by hand)."
        ),
    )

    # --- Traces and logs (OpenTelemetry traces are on when OTEL_EXPORTER_OTLP_ENDPOINT is set) ---
    trace_content: bool = Field(
        False,
        description=(
            "Put prompts, instructions, answers and tool arguments and results in the traces' "
            "model and tool spans (off: only names, token counts and timings)."
        ),
    )

    @field_validator("public_url", "search_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        return parse_networks(value) if isinstance(value, str) else value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> object:
        return parse_retry_schedule(value) if isinstance(value, str) else value

    @field_validator("schedule_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        parse_timezone(value)
        return value

    @model_validator(mode="after")
    def _mail_settings_fit(self) -> Settings:
        if (self.smtp_tls_cert is None) != (self.smtp_tls_key is None):
            raise ValueError("KENNEL_SMTP_TLS_CERT and KENNEL_SMTP_TLS_KEY go together")
        if self.mail_sender_auth == "upstream" and not self.mail_authserv_id:
            raise ValueError(
                "KENNEL_MAIL_SENDER_AUTH=upstream needs KENNEL_MAIL_AUTHSERV_ID, your MTA's id"
            )
        if self.smtp_relay:
            parse_host_port(self.smtp_relay, 25)  # a bad host:port says so now
        return self

    @model_validator(mode="after")
    def _silence_outlasts_heartbeats(self) -> Settings:
        # Shorter, and a live process between two beats would be taken for dead.
        if self.takeover_after_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                "KENNEL_TAKEOVER_AFTER_SECONDS must be at least twice KENNEL_HEARTBEAT_SECONDS"
            )
        return self

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value:
            _parse_database_url(value)
        return value

    @field_validator("budget_caps")
    @classmethod
    def _known_budgets(cls, value: dict[str, BudgetCaps]) -> dict[str, BudgetCaps]:
        unknown = set(value) - {"low", "standard", "high", "unlimited"}
        if unknown:
            raise ValueError(f"unknown budget {sorted(unknown)[0]!r}")
        return value

    @field_validator("mail_domain")
    @classmethod
    def _plain_domain(cls, value: str) -> str:
        if not value or "@" in value or " " in value:
            raise ValueError("must be a bare domain name such as kennel.example.com")
        return value.lower()

    @property
    def base_url(self) -> str:
        """`public_url`, or the address the server listens on when it is unset."""
        if self.public_url:
            return self.public_url
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @cached_property
    def sync_database_url(self) -> str:
        """The configured database as a plain URL (no driver), for DBOS."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'kennel.sqlite3').resolve()}"

    @cached_property
    def database_url_object(self) -> URL:
        """The configured database URL, parsed (`sqlite` or `postgresql`, no driver)."""
        return _parse_database_url(self.sync_database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url_object.get_backend_name() == "sqlite"

    @property
    def connection_shares(self) -> ConnectionShares:
        """How `database_connections` is split between DBOS and Kennel's event loops."""
        return ConnectionShares.of(self.database_connections, smtp=self.smtp_enabled)


@dataclass(frozen=True, slots=True)
class ConnectionShares:
    """A process's PostgreSQL connections: DBOS's pool (its LISTEN connection included),
    Kennel's on the HTTP loop, and on the SMTP listener's loop; together the budget."""

    dbos: int
    http: int
    smtp: int

    @classmethod
    def of(cls, budget: int, *, smtp: bool) -> ConnectionShares:
        dbos = max(3, budget // 3)
        smtp_share = 2 if smtp else 0
        return cls(dbos=dbos, http=budget - dbos - smtp_share, smtp=smtp_share)


def _parse_database_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except Exception as exc:
        raise ValueError(f"not a database URL: {exc}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("SQLite needs a file path (sqlite:///path/to/kennel.sqlite3)")
        return url.set(drivername="sqlite")
    if backend in {"postgresql", "postgres"}:
        return url.set(drivername="postgresql")
    raise ValueError("must be a sqlite:/// or postgresql:// URL")


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment, turning a bad value into one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # overrides are checked by pydantic
    except _SourceError as exc:
        # pydantic-settings decodes a JSON setting (KENNEL_BUDGET_CAPS) before validating it,
        # and raises its own error, naming the field only in English, over the JSON error.
        found = re.search(r'field "(\w+)"', str(exc))
        name = f"KENNEL_{found.group(1).upper()}" if found else "a KENNEL_* variable"
        cause = exc.__cause__
        reason = f"not valid JSON ({cause})" if cause is not None else str(exc)
        raise SettingsError(f"invalid setting {name}: {reason}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a rule across settings: its message names them
            raise SettingsError(f"invalid settings: {first['msg']}") from None
        field = str(first["loc"][0])
        raise SettingsError(f"invalid setting KENNEL_{field.upper()}: {first['msg']}") from None


# The test suite's own switches, read by it and never by the server.
_NOT_SETTINGS = ("KENNEL_TEST_",)


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """`KENNEL_*` variables that are no setting (a typo, or one a newer or older version
    had), each with the closest setting's name, if one is close."""
    known = [f"KENNEL_{name.upper()}" for name in Settings.model_fields]
    found: list[tuple[str, str | None]] = []
    for name in sorted(environ):
        if not name.startswith("KENNEL_") or name in known or name.startswith(_NOT_SETTINGS):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        found.append((name, close[0] if close else None))
    return found
