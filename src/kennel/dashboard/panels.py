"""The worker page's panels that other domains fill: schedules, the webhook, e-mail.

Each panel is a template, `templates/panels/<name>.html`, included by `worker.html` in the
block `panel_<name>` only when the page's context holds the key `panel_<name>`. The context
comes from a loader registered here:

    async def schedules_panel(rt: Runtime, caller: Caller, worker: WorkerRow) -> dict | None:
        ...  # call the domain's service (visibility rules included); None hides the panel

    WORKER_PANELS["schedules"] = schedules_panel

Inside the panel template, besides `panel_<name>` (the loader's mapping): `worker` (the
`WorkerRow`), `state` (the `Worker` object), `email` (the worker's address), `csrf` (the token
every form must post as `csrf`), `panel_errors` (`{field: message}` of a refused form, else
empty) and `panel_values` (what that form sent, `{field: value}`, and anything else its route
shows with it, such as a schedule's preview; else empty). A panel's forms post to dashboard
routes (`route_class=DashboardRoute`) that depend on `SignedInDep`, read their form with
`kennel.dashboard.forms.read_signed_form` (which checks the origin and the CSRF token), call
their service, and answer `redirect(...)` or, when it refuses,
`render_worker_page(request, who, worker_id, panel_errors=..., panel_values=..., status=...)`.

The loaders of Kennel's own panels are in `panels_schedules`, `panels_webhook` and
`panels_email`, with their routes; `kennel.dashboard.install_dashboard` registers them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kennel.auth import Caller
from kennel.core.runtime import Runtime
from kennel.workers.repository import WorkerRow

__all__ = ["PANEL_NAMES", "WORKER_PANELS", "PanelLoader", "load_worker_panels"]

PANEL_NAMES = ("schedules", "webhook", "email")

PanelLoader = Callable[[Runtime, Caller, WorkerRow], Awaitable[Mapping[str, Any] | None]]

# Empty until the schedules, webhooks and e-mail domains register their loaders.
WORKER_PANELS: dict[str, PanelLoader] = {}


async def load_worker_panels(rt: Runtime, caller: Caller, worker: WorkerRow) -> dict[str, Any]:
    """`{"panel_<name>": context}` for every registered panel that has something to show."""
    found: dict[str, Any] = {}
    for name in PANEL_NAMES:
        loader = WORKER_PANELS.get(name)
        if loader is None:
            continue
        context = await loader(rt, caller, worker)
        if context is not None:
            found[f"panel_{name}"] = context
    return found
