"""Model layer: the offline model, `KENNEL_MODEL` parsing and instruction writing."""

from kennel.agents.instructions import ModelError, WrittenInstructions, write_worker_instructions
from kennel.agents.models import ModelConfigError, build_model, is_offline
from kennel.agents.offline_model import OfflineModel
from kennel.agents.schema_sample import sample_from_schema

__all__ = [
    "ModelConfigError",
    "ModelError",
    "OfflineModel",
    "WrittenInstructions",
    "build_model",
    "is_offline",
    "sample_from_schema",
    "write_worker_instructions",
]
