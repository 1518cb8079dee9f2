"""The served OpenAPI document says what the API really does."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from kennel.api.app import PUBLIC_PATHS


async def test_every_route_is_documented_with_real_error_shapes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 shape is never answered
    assert set(schemas["ErrorResponse"]["properties"]) == {"error"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
            assert operation.get("summary"), (method, path)  # from the endpoint's docstring
            if path in PUBLIC_PATHS:
                continue
            for status in ("400", "401", "404"):
                ref = operation["responses"][status]["content"]["application/json"]["schema"]
                assert ref == {"$ref": "#/components/schemas/ErrorResponse"}
    post_task = document["paths"]["/api/tasks"]["post"]["requestBody"]["content"]
    assert set(post_task) == {"application/json", "multipart/form-data"}
    assert "files" in post_task["multipart/form-data"]["schema"]["properties"]


async def test_a_real_error_matches_the_documented_shape(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/api/workers", json={"title": 3}, headers={"Authorization": "Bearer x"})
    assert r.status_code == 401
    assert set(r.json()["error"]) == {"type", "message", "param"}


def test_every_route_is_matched_in_the_apps_own_list() -> None:
    """No route sits behind an included router, which FastAPI 0.165 matches again on every
    request (`kennel.api.http.add_routes`): each documented path is one of the app's own routes."""
    from kennel.api.app import create_app

    app = create_app(durable=False)
    own = {getattr(route, "path_format", None) for route in app.router.routes}
    documented = set(app.openapi()["paths"])
    assert documented <= own, sorted(documented - own)
    assert {"/workers/{worker_id}", "/login"} <= own  # the dashboard's pages too
