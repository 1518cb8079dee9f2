"""Request and response shapes of the Webhooks API, in the contract's casing."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Webhook", "WebhookExecution", "WebhookExecutionList", "WebhookUpdate"]


class WebhookUpdate(BaseModel):
    """`UpdateWebhook`: `url: null` removes the webhook and clears its token."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        ...,
        max_length=2048,
        description=(
            "HTTPS endpoint to POST to when a task turn ends; `null` removes the webhook. It may "
            "not reach loopback, private, link-local or metadata addresses."
        ),
    )


class _Response(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Webhook(_Response):
    url: str | None = Field(description="`null` when no webhook is configured.")
    token: str | None = Field(
        description="Sent in `X-Handinger-Token` and the key of `webhook-signature`; `null` when "
        "no webhook is configured."
    )


class WebhookExecution(_Response):
    """One delivery attempt."""

    id: str
    worker_id: str = Field(alias="workerId")
    event_id: str = Field(alias="eventId", description="The `webhook-id` the attempt carried.")
    attempt: int = Field(ge=1, description="Which attempt of its event this was (1, 2, ...).")
    url: str
    request_status: Literal["success", "error"] = Field(
        alias="requestStatus",
        description="`success` when the endpoint answered 2xx, `error` otherwise (and when "
        "unknown).",
    )
    outcome: Literal["success", "error", "unknown"] = Field(
        description="Kennel's extension: `requestStatus`, or `unknown` when the server stopped "
        "while the attempt was being sent and no answer was recorded (the endpoint may have "
        "received it; it counts as a failed try)."
    )
    response_status: int | None = Field(None, alias="responseStatus")
    error_message: str | None = Field(None, alias="errorMessage")
    response_excerpt: str = Field(
        "", alias="responseExcerpt", description="At most 1 KiB of the answer's body."
    )
    duration_ms: int = Field(alias="durationMs", ge=0)
    task_id: str | None = Field(None, alias="taskId")
    task_title: str | None = Field(None, alias="taskTitle")
    created_at: str = Field(alias="createdAt")


class WebhookExecutionList(_Response):
    logs: list[WebhookExecution]
    page: int
    page_count: int = Field(alias="pageCount")
    total_count: int = Field(alias="totalCount")
