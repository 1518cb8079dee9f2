"""Every Workers endpoint of a live `kennel serve`, through the official SDK in strict mode."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import handinger
import httpx
import pytest
from handinger import Handinger

from kennel.auth.keys import generate_key
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e

DOG_NAME = re.compile(r"^[A-Z][a-z]+ [A-Z][a-z]+$")
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
SCHEMA = {
    "type": "object",
    "properties": {"breed": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["breed"],
}
WORKER_PATHS = {
    "/api/workers": {"post"},
    "/api/workers/{workerId}": {"get", "patch", "delete"},
    "/api/workers/{workerId}/email": {"get"},
}


def extras(model: Any) -> dict[str, Any]:
    """The response's fields as sent, the ones the SDK's model does not declare included."""
    return model.to_dict()


def error_of(exc: handinger.APIStatusError) -> dict[str, Any]:
    assert isinstance(exc.body, dict), exc.body
    error = exc.body["error"]
    assert set(error) == {"type", "message", "param"}, error
    assert error["message"]
    return error


class TestCreate:
    def test_defaults(self, live_server: LiveServer, sdk: Handinger) -> None:
        worker = sdk.workers.create()
        assert worker.id.startswith("wrk_")
        assert DOG_NAME.match(worker.title), worker.title
        assert worker.instructions == ""
        assert worker.summary == ""
        assert worker.output_schema is None
        assert worker.visibility == "public"
        assert worker.url == f"{live_server.base_url}/workers/{worker.id}"
        assert worker.organization_id.startswith("org_")
        assert worker.user_id.startswith("usr_")
        assert ISO_Z.fullmatch(worker.created_at or ""), worker.created_at
        assert ISO_Z.fullmatch(worker.updated_at or ""), worker.updated_at
        sent = extras(worker)
        assert sent["instructionsVersion"] == 1
        slug = worker.title.lower().replace(" ", "-")
        assert re.fullmatch(rf"{slug}-[0-9a-f]{{8}}@kennel\.localhost", sent["email"])

    def test_all_fields(self, sdk: Handinger) -> None:
        worker = sdk.workers.create(
            title="Release Watcher",
            instructions="Summarise the release notes.",
            summary="Watches releases",
            output_schema=SCHEMA,
            visibility="private",
            prompt="ignored when instructions are given",
        )
        assert worker.title == "Release Watcher"
        assert worker.instructions == "Summarise the release notes."
        assert worker.summary == "Watches releases"
        assert worker.output_schema == SCHEMA
        assert worker.visibility == "private"
        assert extras(worker)["email"].startswith("release-watcher-")

    def test_prompt_only_writes_instructions_and_summary(self, sdk: Handinger) -> None:
        prompt = "Every morning fetch https://example.com/news and list the top five dog stories"
        worker = sdk.workers.create(prompt=prompt)
        assert worker.instructions
        assert "top five dog stories" in worker.instructions
        assert 0 < len(worker.summary) <= 80
        assert DOG_NAME.match(worker.title)

    def test_prompt_keeps_a_given_summary(self, sdk: Handinger) -> None:
        worker = sdk.workers.create(prompt="Summarise new RFCs every week.", summary="RFC digest")
        assert worker.summary == "RFC digest"
        assert "RFC" in worker.instructions

    def test_title_over_the_limit_is_a_bad_request_naming_title(self, sdk: Handinger) -> None:
        assert sdk.workers.create(title="x" * 200).title == "x" * 200
        with pytest.raises(handinger.BadRequestError) as info:
            sdk.workers.create(title="x" * 201)
        error = error_of(info.value)
        assert error["param"] == "title"
        assert error["type"] == "invalid_request_error"

    def test_invalid_output_schema_is_a_bad_request(self, sdk: Handinger) -> None:
        with pytest.raises(handinger.BadRequestError) as info:
            sdk.workers.create(output_schema={"type": "nonsense"})
        assert error_of(info.value)["param"] == "outputSchema"


class TestRetrieve:
    def test_a_new_worker_is_pending(self, live_server: LiveServer, sdk: Handinger) -> None:
        created = sdk.workers.create(title="Pending Pug")
        worker = sdk.workers.retrieve(created.id)
        assert worker.id == created.id
        assert worker.object == "worker"
        assert worker.status == "pending"
        assert worker.running is False
        assert worker.output == []
        assert worker.output_text == ""
        assert worker.structured_output is None
        assert worker.messages == []
        assert worker.files == []
        assert worker.sources == []
        assert worker.error is None
        assert worker.url == f"{live_server.base_url}/workers/{created.id}"
        assert isinstance(worker.created_at, int)
        assert abs(worker.created_at - time.time()) < 300
        assert worker.metadata["title"] == "Pending Pug"
        assert "taskId" in worker.metadata
        assert "triggeredBy" in worker.metadata
        assert worker.usage is not None
        assert (worker.usage.credits, worker.usage.duration_ms) == (0, 0)

    def test_unknown_worker_is_not_found(self, sdk: Handinger) -> None:
        with pytest.raises(handinger.NotFoundError) as info:
            sdk.workers.retrieve("wrk_doesnotexist")
        assert error_of(info.value)["type"] == "not_found_error"


class TestUpdate:
    def test_title(self, sdk: Handinger) -> None:
        created = sdk.workers.create(title="Old Name", instructions="Bark.")
        email = sdk.workers.retrieve_email(created.id).email
        updated = sdk.workers.update(created.id, title="New Name")
        assert updated.title == "New Name"
        assert updated.instructions == "Bark."
        assert extras(updated)["instructionsVersion"] == 1
        assert sdk.workers.retrieve(created.id).metadata["title"] == "New Name"
        assert sdk.workers.retrieve_email(created.id).email == email  # the address stays

    def test_instructions_twice_make_two_versions(self, sdk: Handinger) -> None:
        created = sdk.workers.create(instructions="v1")
        first = sdk.workers.update(created.id, instructions="v2")
        assert (first.instructions, extras(first)["instructionsVersion"]) == ("v2", 2)
        second = sdk.workers.update(created.id, instructions="v2")
        assert (second.instructions, extras(second)["instructionsVersion"]) == ("v2", 3)
        assert second.title == created.title

    def test_summary_visibility_and_schema(self, sdk: Handinger) -> None:
        created = sdk.workers.create()
        updated = sdk.workers.update(
            created.id, summary="Short", visibility="private", output_schema=SCHEMA
        )
        assert (updated.summary, updated.visibility, updated.output_schema) == (
            "Short",
            "private",
            SCHEMA,
        )

    def test_output_schema_none_sends_null_and_clears(self, live_server: LiveServer) -> None:
        # The SDK (0.18) sends `"outputSchema": null` for output_schema=None: no raw request
        # needed. The hook records the bodies to prove it.
        bodies: list[bytes] = []

        def record(request: httpx.Request) -> None:
            if request.method == "PATCH":
                bodies.append(request.read())

        hooked = httpx.Client(event_hooks={"request": [record]})
        with live_server.sdk(http_client=hooked) as client:
            created = client.workers.create(output_schema=SCHEMA, instructions="Keep me.")
            assert created.output_schema == SCHEMA
            cleared = client.workers.update(created.id, output_schema=None)
            assert cleared.output_schema is None
            assert cleared.instructions == "Keep me."
            assert json.loads(bodies[-1]) == {"outputSchema": None}
            # Absent is not null: an empty PATCH keeps everything.
            client.workers.update(created.id, output_schema=SCHEMA)
            kept = client.workers.update(created.id)
            assert json.loads(bodies[-1]) == {}
            assert kept.output_schema == SCHEMA

    def test_null_title_is_a_bad_request(self, sdk: Handinger) -> None:
        created = sdk.workers.create()
        with pytest.raises(handinger.BadRequestError) as info:
            sdk.workers.update(created.id, extra_body={"title": None})
        assert error_of(info.value)["param"] == "title"

    def test_unknown_field_is_a_bad_request(self, sdk: Handinger) -> None:
        created = sdk.workers.create()
        with pytest.raises(handinger.BadRequestError) as info:
            sdk.workers.update(created.id, extra_body={"prompt": "not updatable"})
        assert error_of(info.value)["param"] == "prompt"


class TestDelete:
    def test_delete_then_everything_is_not_found(self, sdk: Handinger) -> None:
        created = sdk.workers.create(title="Short Lived")
        assert sdk.workers.delete(created.id).deleted is True
        with pytest.raises(handinger.NotFoundError):
            sdk.workers.retrieve(created.id)
        with pytest.raises(handinger.NotFoundError):
            sdk.workers.update(created.id, title="Back")
        with pytest.raises(handinger.NotFoundError):
            sdk.workers.retrieve_email(created.id)
        with pytest.raises(handinger.NotFoundError):
            sdk.workers.delete(created.id)


class TestRetrieveEmail:
    def test_email(self, sdk: Handinger) -> None:
        created = sdk.workers.create(title="Mail Hound")
        email = sdk.workers.retrieve_email(created.id).email
        assert re.fullmatch(r"mail-hound-[0-9a-f]{8}@kennel\.localhost", email)
        assert email == extras(created)["email"]


class TestAsyncClient:
    async def test_full_lifecycle(self, live_server: LiveServer) -> None:
        async with live_server.async_sdk() as client:
            created = await client.workers.create(title="Async Akita", instructions="Go.")
            state = await client.workers.retrieve(created.id)
            assert (state.status, state.running) == ("pending", False)
            updated = await client.workers.update(created.id, instructions="Go faster.")
            assert extras(updated)["instructionsVersion"] == 2
            email = await client.workers.retrieve_email(created.id)
            assert email.email.startswith("async-akita-")
            assert (await client.workers.delete(created.id)).deleted is True
            with pytest.raises(handinger.NotFoundError):
                await client.workers.retrieve(created.id)


class TestAuthentication:
    def test_unknown_key_is_an_authentication_error(self, live_server: LiveServer) -> None:
        with live_server.sdk(generate_key()) as client:
            with pytest.raises(handinger.AuthenticationError) as info:
                client.workers.create(title="Nope")
            assert error_of(info.value)["type"] == "authentication_error"
            with pytest.raises(handinger.AuthenticationError):
                client.workers.retrieve("wrk_anything")

    def test_no_key_is_401(self, live_server: LiveServer) -> None:
        with live_server.http() as http:
            response = http.get("/api/workers/wrk_anything")
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


class TestIsolation:
    def test_another_organization_sees_nothing(
        self, live_server: LiveServer, sdk: Handinger
    ) -> None:
        mine = sdk.workers.create(title="Home Guard", instructions="Guard.")
        stranger = live_server.create_member(org=f"rivals-{uuid.uuid4().hex[:6]}")
        with live_server.sdk(stranger.key) as other:
            with pytest.raises(handinger.NotFoundError):
                other.workers.retrieve(mine.id)
            with pytest.raises(handinger.NotFoundError):
                other.workers.retrieve_email(mine.id)
            with pytest.raises(handinger.NotFoundError):
                other.workers.update(mine.id, title="Stolen")
            with pytest.raises(handinger.NotFoundError):
                other.workers.delete(mine.id)
            theirs = other.workers.create(title="Rival Pack")
            assert theirs.organization_id == stranger.organization_id
            assert theirs.user_id == stranger.user_id
            assert theirs.organization_id != mine.organization_id
        with pytest.raises(handinger.NotFoundError):
            sdk.workers.retrieve(theirs.id)
        still = sdk.workers.retrieve(mine.id)
        assert still.metadata["title"] == "Home Guard"

    def test_same_organization_member(self, live_server: LiveServer, sdk: Handinger) -> None:
        public = sdk.workers.create(title="Shared Setter")
        private = sdk.workers.create(title="Secret Shiba", visibility="private")
        colleague = live_server.create_member(org="default")  # the bootstrap organization
        with live_server.sdk(colleague.key) as other:
            assert other.workers.retrieve(public.id).status == "pending"
            assert other.workers.update(public.id, summary="Seen").summary == "Seen"
            with pytest.raises(handinger.PermissionDeniedError):
                other.workers.delete(public.id)
            with pytest.raises(handinger.NotFoundError):
                other.workers.retrieve(private.id)


class TestServedDocs:
    def test_openapi_and_docs(self, live_server: LiveServer) -> None:
        with live_server.http() as http:
            document = http.get("/openapi.json")
            docs = http.get("/docs")
        assert document.status_code == 200, document.text
        assert docs.status_code == 200
        assert docs.headers["content-type"].startswith("text/html")
        assert "/openapi.json" in docs.text
        spec = document.json()
        for path, methods in WORKER_PATHS.items():
            assert path in spec["paths"], sorted(spec["paths"])
            assert methods <= set(spec["paths"][path]), (path, set(spec["paths"][path]))
        schemas = spec["components"]["schemas"]
        assert {"WorkerCreate", "WorkerTemplate", "WorkerState"} <= set(schemas)
        paths = spec["paths"]
        assert _request_ref(paths["/api/workers"]["post"]) == "WorkerCreate"
        assert _response_ref(paths["/api/workers"]["post"], "201") == "WorkerTemplate"
        assert _response_ref(paths["/api/workers/{workerId}"]["get"], "200") == "WorkerState"
        assert _request_ref(paths["/api/workers/{workerId}"]["patch"]) == "WorkerUpdate"
        assert _response_ref(paths["/api/workers/{workerId}"]["patch"], "200") == "WorkerTemplate"
        assert _response_ref(paths["/api/workers/{workerId}"]["delete"], "200")
        assert _response_ref(paths["/api/workers/{workerId}/email"]["get"], "200")
        create = schemas["WorkerCreate"]["properties"]
        assert {"title", "instructions", "prompt", "summary", "outputSchema", "visibility"} <= set(
            create
        )
        template = schemas["WorkerTemplate"]["properties"]
        assert {"createdAt", "organizationId", "outputSchema", "userId", "url"} <= set(template)
        state = schemas["WorkerState"]["properties"]
        assert {"created_at", "output_text", "structured_output", "running"} <= set(state)


def _request_ref(operation: dict[str, Any]) -> str:
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return schema["$ref"].rsplit("/", 1)[-1]


def _response_ref(operation: dict[str, Any], status: str) -> str:
    schema = operation["responses"][status]["content"]["application/json"]["schema"]
    return schema["$ref"].rsplit("/", 1)[-1]


class TestServerLog:
    def test_json_lines_with_request_ids_and_no_key(
        self, live_server: LiveServer, sdk: Handinger
    ) -> None:
        request_id = f"e2e-{uuid.uuid4().hex[:12]}"
        created = sdk.workers.create(title="Logged Lab", extra_headers={"X-Request-Id": request_id})
        raw = sdk.workers.with_raw_response.retrieve(created.id)
        generated = raw.headers["x-request-id"]
        assert generated
        assert raw.parse().id == created.id
        with live_server.sdk(generate_key()) as bad, pytest.raises(handinger.AuthenticationError):
            bad.workers.retrieve(created.id)

        entries = _wait_for_log_entries(live_server, {request_id, generated})
        by_id = {e["requestId"]: e for e in entries if "requestId" in e}
        assert "POST /api/workers 201" in by_id[request_id]["message"]
        assert f"GET /api/workers/{created.id} 200" in by_id[generated]["message"]
        text = live_server.log_text()
        assert live_server.api_key not in text
        assert live_server.api_key[4:] not in text  # not even without its prefix

    def test_every_log_line_is_json(self, live_server: LiveServer, sdk: Handinger) -> None:
        sdk.workers.create()
        lines = [line for line in live_server.log_text().splitlines() if line.strip()]
        assert lines
        for line in lines:
            entry = json.loads(line)
            assert {"time", "level", "logger", "message"} <= set(entry), entry


def _wait_for_log_entries(server: LiveServer, request_ids: set[str]) -> list[dict[str, Any]]:
    # The access line is written as the response finishes; give it a moment to land.
    deadline = time.monotonic() + 10
    while True:
        entries = [json.loads(line) for line in server.log_text().splitlines() if line.strip()]
        seen = {e.get("requestId") for e in entries}
        if request_ids <= seen or time.monotonic() > deadline:
            assert request_ids <= seen, f"request ids {request_ids - seen} not in the log"
            return entries
        time.sleep(0.1)
