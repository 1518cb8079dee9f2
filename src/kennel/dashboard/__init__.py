"""The dashboard: the web pages behind every `url` field, signed in with an API key."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from kennel.api.http import add_routes
from kennel.dashboard import panels_email, panels_schedules, panels_webhook
from kennel.dashboard.headers import DashboardHeadersMiddleware
from kennel.dashboard.notfound import install_not_found_page
from kennel.dashboard.panels import WORKER_PANELS
from kennel.dashboard.routes import router as pages_router
from kennel.dashboard.signin import router as signin_router

__all__ = ["DASHBOARD_PUBLIC_PATHS", "STATIC_PATH", "install_dashboard"]

STATIC_PATH = "/static"
# Served without a session: the sign-in page and our own CSS, script and icon.
DASHBOARD_PUBLIC_PATHS = frozenset({"/login", STATIC_PATH})
_STATIC = Path(__file__).parent / "static"


def install_dashboard(app: FastAPI) -> None:
    """Mount the pages, the worker page's panels, the static files, the security headers and
    the 404 page of addresses no route serves."""
    app.mount(STATIC_PATH, StaticFiles(directory=_STATIC), name="dashboard-static")
    add_routes(app, signin_router)
    add_routes(app, pages_router)
    WORKER_PANELS["schedules"] = panels_schedules.schedules_panel
    WORKER_PANELS["webhook"] = panels_webhook.webhook_panel
    WORKER_PANELS["email"] = panels_email.email_panel
    for panel in (panels_schedules, panels_webhook, panels_email):
        add_routes(app, panel.router)
    app.add_middleware(DashboardHeadersMiddleware)
    install_not_found_page(app)
