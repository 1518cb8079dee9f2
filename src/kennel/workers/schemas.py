"""Request and response shapes of the Workers API, in the contract's casing."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DeleteWorkerResponse",
    "MemberList",
    "MemberRemoved",
    "Visibility",
    "WorkerCreate",
    "WorkerEmail",
    "WorkerFile",
    "WorkerList",
    "WorkerMemberOut",
    "WorkerOutput",
    "WorkerOutputContent",
    "WorkerSource",
    "WorkerState",
    "WorkerTemplate",
    "WorkerUpdate",
    "WorkerUsage",
]

Visibility = Literal["public", "private"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


def _not_null(schema: dict[str, Any]) -> None:
    """Leave `null` out of a field's JSON schema: it may be omitted, not sent as null."""
    branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    schema.pop("default", None)


class WorkerCreate(_Request):
    """`CreateWorker`."""

    title: str | None = Field(None, min_length=1, max_length=200)
    instructions: str | None = Field(None, max_length=20_000)
    prompt: str | None = Field(None, max_length=10_000)
    summary: str | None = Field(None, max_length=80)
    output_schema: dict[str, Any] | None = Field(None, alias="outputSchema")
    visibility: Visibility = "public"
    mcp_servers: list[str] | None = Field(
        None,
        alias="mcpServers",
        max_length=10,
        description=(
            "Names of the organization's MCP servers whose tools the worker's agent may call"
            " (a Kennel extension; see `/api/mcp-servers`)."
        ),
    )


class WorkerUpdate(_Request):
    """`UpdateWorker`: absent fields stay, `outputSchema: null` clears the schema.

    The other fields may be left out but not sent as null (the service says so); their
    schemas leave null out, so the OpenAPI document says the same."""

    title: str | None = Field(None, min_length=1, max_length=200, json_schema_extra=_not_null)
    instructions: str | None = Field(None, max_length=20_000, json_schema_extra=_not_null)
    summary: str | None = Field(None, max_length=80, json_schema_extra=_not_null)
    output_schema: dict[str, Any] | None = Field(None, alias="outputSchema")
    visibility: Visibility | None = Field(None, json_schema_extra=_not_null)
    mcp_servers: list[str] | None = Field(
        None,
        json_schema_extra=_not_null,
        alias="mcpServers",
        max_length=10,
        description=(
            "Names of the organization's MCP servers whose tools the worker's agent may call"
            " (a Kennel extension; see `/api/mcp-servers`)."
        ),
    )


class _Response(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class WorkerTemplate(_Response):
    id: str
    created_at: str = Field(alias="createdAt")
    updated_at: str = Field(alias="updatedAt")
    organization_id: str = Field(alias="organizationId")
    user_id: str = Field(alias="userId")
    title: str
    summary: str
    instructions: str
    instructions_version: int = Field(alias="instructionsVersion")
    output_schema: dict[str, Any] | None = Field(alias="outputSchema")
    visibility: Visibility
    email: str
    url: str = Field(description="Web URL of the worker in the dashboard.")
    mcp_servers: list[str] = Field(
        default_factory=list,
        alias="mcpServers",
        description="The MCP servers whose tools its agent may call (a Kennel extension).",
    )


class WorkerOutputContent(_Response):
    type: Literal["output_text"] = "output_text"
    text: str


class WorkerOutput(_Response):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: Literal["completed"] = "completed"
    content: list[WorkerOutputContent]


class WorkerFile(_Response):
    filename: str
    media_type: str = Field(alias="mediaType")
    url: str
    size: int | None = Field(None, ge=0)


class WorkerSource(_Response):
    id: str
    type: Literal["url"] = "url"
    url: str
    title: str


class WorkerUsage(_Response):
    credits: int = Field(0, ge=0)
    duration_ms: int = Field(0, ge=0, alias="durationMs")


class WorkerState(_Response):
    """The `Worker` object: the live state of a worker as of its most recent task."""

    id: str
    object: Literal["worker"] = "worker"
    created_at: int = Field(description="Unix seconds.")
    status: Literal["pending", "running", "completed"]
    running: bool
    output: list[WorkerOutput]
    output_text: str
    structured_output: dict[str, Any] | None
    messages: list[dict[str, Any]]
    files: list[WorkerFile]
    sources: list[WorkerSource]
    usage: WorkerUsage
    error: dict[str, Any] | None
    incomplete_details: dict[str, Any] | None = None
    metadata: dict[str, Any]
    url: str


class WorkerList(_Response):
    """`GET /api/workers`: a page of worker templates, newest first (a Kennel extension)."""

    workers: list[WorkerTemplate]
    page: int
    page_count: int = Field(alias="pageCount")
    total_count: int = Field(alias="totalCount")


class WorkerEmail(_Response):
    email: str


class DeleteWorkerResponse(_Response):
    deleted: bool


class WorkerMemberOut(_Response):
    worker_id: str = Field(alias="workerId")
    user_id: str = Field(alias="userId")
    email: str
    created_at: str = Field(alias="createdAt")


class MemberList(_Response):
    worker_id: str = Field(alias="workerId")
    members: list[WorkerMemberOut]


class MemberRemoved(_Response):
    removed: bool
