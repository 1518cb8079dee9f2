"""ORM tables; every module is imported here so Alembic sees the whole metadata."""

from kennel.models.base import Base
from kennel.models.organization import ApiKey, Organization, User
from kennel.models.task import Task, Turn, TurnFile
from kennel.models.worker import Worker, WorkerInstructionVersion, WorkerMember

__all__ = [
    "ApiKey",
    "Base",
    "Organization",
    "Task",
    "Turn",
    "TurnFile",
    "User",
    "Worker",
    "WorkerInstructionVersion",
    "WorkerMember",
]
