"""The worker page's panel forms, turned into the API's own request models.

Field names are the `param`s the services name in their refusals (`when.cron`, `url`,
`senders`), so an error lands next to the field that caused it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from kennel.api.errors import BadRequest, validation_error
from kennel.core.parsers import parse_timezone
from kennel.dashboard.forms import SubmittedForm
from kennel.schedules.schemas import ScheduleCreate
from kennel.webhooks.schemas import WebhookUpdate

__all__ = ["KINDS", "allowed_senders", "schedule_create", "webhook_url"]

KINDS = ("cron", "interval", "delayed", "scheduled")


def _validated(model: type[BaseModel], raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


def _whole_number(form: SubmittedForm, name: str) -> int:
    text = form.text(name).strip()
    if not text:
        raise BadRequest(f"{name} is required: a whole number of seconds.", param=name)
    if not text.isdigit():
        raise BadRequest(f"{name} must be a whole number of seconds.", param=name)
    return int(text)


def _date(form: SubmittedForm, default_zone: str) -> str:
    """The date field as ISO 8601 with an offset: a browser's `datetime-local` sends none, so
    it is read in the form's time zone, else the server's `KENNEL_SCHEDULE_TIMEZONE`."""
    text = form.text("when.date").strip()
    if not text:
        raise BadRequest("when.date is required.", param="when.date")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise BadRequest(
            "when.date must be a date and time, such as 2030-01-31T09:00.", param="when.date"
        ) from None
    if moment.tzinfo is None:
        name = form.optional("when.timezone")
        try:
            zone = parse_timezone(name.strip() if name else default_zone)
        except ValueError as exc:
            raise BadRequest(f"when.timezone: {exc}.", param="when.timezone") from None
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat()


def schedule_create(form: SubmittedForm, default_zone: str) -> ScheduleCreate:
    """`CreateSchedule` from the New schedule form: the kind's own fields, the others ignored."""
    kind = form.text("when.type")
    when: dict[str, Any] = {"type": kind}
    if kind == "scheduled":
        when["date"] = _date(form, default_zone)
    elif kind == "delayed":
        when["delayInSeconds"] = _whole_number(form, "when.delayInSeconds")
    elif kind == "interval":
        when["intervalSeconds"] = _whole_number(form, "when.intervalSeconds")
    elif kind == "cron":
        when["cron"] = form.text("when.cron")
        zone = form.optional("when.timezone")
        if zone is not None:
            when["timezone"] = zone.strip()
    else:
        raise BadRequest(f"when.type must be one of {', '.join(KINDS)}.", param="when.type")
    budget = form.optional("budget") or "standard"
    raw = {"input": form.text("input"), "when": when, "budget": budget}
    created: ScheduleCreate = _validated(ScheduleCreate, raw)
    return created


def webhook_url(form: SubmittedForm) -> str:
    """The URL field, held to `UpdateWebhook`'s rules (the service checks the address)."""
    url = form.text("url").strip()
    if not url:
        raise BadRequest("url is required; Remove takes the webhook away.", param="url")
    update: WebhookUpdate = _validated(WebhookUpdate, {"url": url})
    assert update.url is not None
    return update.url


def allowed_senders(form: SubmittedForm) -> list[str]:
    """The allow-list text area: one address or @domain a line, blank lines ignored."""
    return [line.strip() for line in form.text("senders").split("\n") if line.strip()]
