"""Dashboard forms: read (CSRF first), and turned into the API's own request models.

Field names are the API's (`title`, `outputSchema`, `input`, `files`), so an `ApiError` of a
service, whose `param` names the field at fault, lands next to the right form field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from kennel.api.errors import ApiError, BadRequest, validation_error
from kennel.api.http import decode_json_body, read_form
from kennel.core.runtime import of_request
from kennel.dashboard.auth import SignedIn, require_csrf, require_same_origin
from kennel.tasks.schemas import TaskCreate
from kennel.tasks.starting import Upload
from kennel.workers.repository import WorkerRow
from kennel.workers.schemas import WorkerCreate, WorkerUpdate

__all__ = [
    "SubmittedForm",
    "field_errors",
    "read_signed_form",
    "task_create",
    "worker_create",
    "worker_update",
]

# As many parts as `POST /api/tasks` takes.
_MAX_FILES = 100
_MAX_FIELDS = 20


@dataclass
class SubmittedForm:
    fields: dict[str, str]
    uploads: list[Upload] = field(default_factory=list)

    def text(self, name: str) -> str:
        return self.fields.get(name, "")

    def optional(self, name: str) -> str | None:
        """The field's text, or None when it was left empty."""
        value = self.fields.get(name, "")
        return value if value.strip() else None


async def read_signed_form(
    request: Request, who: SignedIn, *, files: bool = False
) -> SubmittedForm:
    """The posted form, refused (403) unless it comes from this site's origin and carries the
    session's CSRF token."""
    require_same_origin(request, of_request(request).settings)
    form = await read_form(
        request, max_files=_MAX_FILES if files else 0, max_fields=_MAX_FIELDS + _MAX_FILES
    )
    try:
        require_csrf(who, form.get("csrf"))
        submitted = SubmittedForm({})
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != "files":
                    raise BadRequest("Files go in the field named 'files'.", param=name)
                data = await value.read()
                if value.filename or data:  # a file field left empty sends an empty part
                    submitted.uploads.append(Upload(value.filename or "upload", data))
            else:
                # Browsers send text areas with CRLF line ends; the API's texts use LF.
                submitted.fields[name] = value.replace("\r\n", "\n")
        return submitted
    finally:
        await form.close()


def _validated(model: type[BaseModel], raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


def _output_schema(form: SubmittedForm) -> dict[str, Any] | None:
    text = form.optional("outputSchema")
    if text is None:
        return None
    try:
        value = decode_json_body(text.encode())
    except HTTPException as exc:
        raise BadRequest(f"{exc.detail}", param="outputSchema") from None
    if not isinstance(value, dict):
        raise BadRequest("outputSchema must be a JSON object.", param="outputSchema")
    return value


def worker_create(form: SubmittedForm) -> WorkerCreate:
    """`CreateWorker` from the New worker form; empty fields are left out."""
    raw: dict[str, Any] = {
        name: value
        for name in ("title", "instructions", "prompt", "summary")
        if (value := form.optional(name)) is not None
    }
    schema = _output_schema(form)
    if schema is not None:
        raw["outputSchema"] = schema
    raw["visibility"] = form.optional("visibility") or "public"
    created: WorkerCreate = _validated(WorkerCreate, raw)
    return created


def worker_update(form: SubmittedForm, worker: WorkerRow) -> WorkerUpdate:
    """`UpdateWorker` from the template form: only what changed, so saving the same
    instructions makes no new version; an emptied schema field clears the schema."""
    raw: dict[str, Any] = {}
    title = form.text("title").strip()
    if title != worker.title:
        raw["title"] = title
    if form.text("summary") != worker.summary:
        raw["summary"] = form.text("summary")
    instructions = form.text("instructions")
    if instructions != worker.instructions:
        raw["instructions"] = instructions
    schema = _output_schema(form)
    if schema != worker.output_schema:
        raw["outputSchema"] = schema
    if "mcpServers" in form.fields:  # comma-separated names
        names = [n.strip() for n in form.text("mcpServers").split(",") if n.strip()]
        if names != worker.mcp_servers:
            raw["mcpServers"] = names
    visibility = form.optional("visibility")
    if visibility is not None and visibility != worker.visibility:
        raw["visibility"] = visibility
    if "title" in raw and not title:
        raise BadRequest("title cannot be empty.", param="title")
    updated: WorkerUpdate = _validated(WorkerUpdate, raw)
    return updated


def task_create(form: SubmittedForm, worker_id: str) -> TaskCreate:
    """`POST /api/tasks` from the Run form, on this worker."""
    raw: dict[str, Any] = {
        "input": form.text("input"),
        "workerId": worker_id,
        "budget": form.optional("budget") or "standard",
    }
    follow_up = form.optional("taskId")
    if follow_up is not None:
        raw["taskId"] = follow_up
    created: TaskCreate = _validated(TaskCreate, raw)
    return created


def field_errors(exc: ApiError) -> dict[str, str]:
    """The error as `{field: message}`, under `form` when it names no field."""
    return {exc.param or "form": exc.message}
