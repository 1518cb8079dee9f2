"""Table declarations; every module is imported here so Alembic sees the whole metadata."""

from kennel.models.base import metadata
from kennel.models.dashboard_session import dashboard_sessions
from kennel.models.executor import executors
from kennel.models.idempotency_key import idempotency_keys
from kennel.models.mail import mail_messages, mail_threads, worker_mail_senders
from kennel.models.mcp_server import mcp_servers
from kennel.models.organization import api_keys, organizations, users
from kennel.models.schedule import schedule_runs, schedules
from kennel.models.server_secret import server_secrets
from kennel.models.task import tasks, turn_files, turns
from kennel.models.webhook import webhook_events, webhook_executions, webhooks
from kennel.models.worker import worker_instruction_versions, worker_members, workers
from kennel.models.workspace import workspace_file_chunks, workspace_files

__all__ = [
    "api_keys",
    "dashboard_sessions",
    "executors",
    "idempotency_keys",
    "mail_messages",
    "mail_threads",
    "mcp_servers",
    "metadata",
    "organizations",
    "schedule_runs",
    "schedules",
    "server_secrets",
    "tasks",
    "turn_files",
    "turns",
    "users",
    "webhook_events",
    "webhook_executions",
    "webhooks",
    "worker_instruction_versions",
    "worker_mail_senders",
    "worker_members",
    "workers",
    "workspace_file_chunks",
    "workspace_files",
]
