"""Requests counted by route template and status class, unhandled errors included."""

from __future__ import annotations

import httpx
from sqlalchemy import exc as sa_exc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kennel.metrics.http import HttpMetricsMiddleware
from kennel.metrics.instruments import REGISTRY
from tests.factories import Member
from tests.factories.workers import new_worker_id


def count(method: str, route: str, status_class: str) -> float:
    labels = {"method": method, "route": route, "status_class": status_class}
    return REGISTRY.get_sample_value("kennel_http_requests_total", labels) or 0.0


async def thing(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"thing {request.path_params['thing_id']}")


async def broken(request: Request) -> PlainTextResponse:
    raise sa_exc.OperationalError("SELECT 1", None, ConnectionResetError("reset"))


def starlette_client() -> httpx.AsyncClient:
    routes = [Route("/things/{thing_id}", thing), Route("/broken", broken)]
    app = HttpMetricsMiddleware(Starlette(routes=routes))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


class TestMiddleware:
    async def test_a_request_is_counted_by_its_routes_template(self) -> None:
        before = count("GET", "/things/{thing_id}", "2xx")
        async with starlette_client() as client:
            for n in range(3):
                assert (await client.get(f"/things/t{n}")).status_code == 200
        assert count("GET", "/things/{thing_id}", "2xx") == before + 3
        assert (
            REGISTRY.get_sample_value(
                "kennel_http_requests_total",
                {"method": "GET", "route": "/things/t1", "status_class": "2xx"},
            )
            is None
        )

    async def test_a_path_no_route_matches_is_unmatched(self) -> None:
        before = count("GET", "unmatched", "4xx")
        async with starlette_client() as client:
            assert (await client.get("/nothing/here")).status_code == 404
        assert count("GET", "unmatched", "4xx") == before + 1

    async def test_an_unhandled_database_error_is_a_5xx_and_a_database_error(self) -> None:
        before = count("GET", "/broken", "5xx")
        labels = {"kind": "transient", "where": "request"}
        errors = REGISTRY.get_sample_value("kennel_database_errors_total", labels) or 0.0
        async with starlette_client() as client:
            assert (await client.get("/broken")).status_code == 500
        assert count("GET", "/broken", "5xx") == before + 1
        assert REGISTRY.get_sample_value("kennel_database_errors_total", labels) == errors + 1


async def test_the_app_counts_its_api_routes_by_template(
    client: httpx.AsyncClient, member: Member
) -> None:
    worker_id = await new_worker_id(client, member)
    route = "/api/workers/{workerId}/email"
    before = count("GET", route, "2xx")
    missing = count("GET", route, "4xx")
    r = await client.get(f"/api/workers/{worker_id}/email", headers=member.headers)
    assert r.status_code == 200, r.text
    r = await client.get("/api/workers/wrk_missing/email", headers=member.headers)
    assert r.status_code == 404
    assert count("GET", route, "2xx") == before + 1
    assert count("GET", route, "4xx") == missing + 1
