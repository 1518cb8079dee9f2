"""How every request body is read (`kennel.api.http`): numbers JSON has, booleans that are booleans.

Found by a probe (issue 21): `NaN`, `Infinity` and `1e999` inside an `outputSchema` were stored
as tokens no JSON reader takes back and shown as `null`; `{"paused": 0}` and
`{"stream": "false"}` were read as booleans.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from kennel.api.http import decode_json_body
from kennel.models import schedules, tasks, workers
from tests.factories import Member, count_rows
from tests.factories.workers import new_worker_id


class TestNonFiniteNumbers:
    @pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999", "-1E+400"])
    async def test_an_output_schema_with_one_is_400_and_nothing_is_stored(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, token: str
    ) -> None:
        before = await count_rows(app, workers, member.organization_id)
        schema = '{"type": "number", "maximum": ' + token + "}"
        body = '{"title": "Numbers", "outputSchema": ' + schema + "}"
        r = await client.post(
            "/api/workers",
            content=body,
            headers={**member.headers, "content-type": "application/json"},
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "outputSchema"
        assert "not finite" in r.json()["error"]["message"]
        assert await count_rows(app, workers, member.organization_id) == before

    async def test_everywhere_a_body_is_read(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        headers = {**member.headers, "content-type": "application/json"}
        cases = [
            ("POST", f"/api/workers/{worker_id}/schedules",
             '{"input": "x", "when": {"type": "delayed", "delayInSeconds": 1e999}}', "when"),
            ("POST", "/api/tasks", '{"input": "x", "workerId": "' + worker_id + '", "budget": NaN}',
             "budget"),
            ("PATCH", f"/api/workers/{worker_id}", '{"outputSchema": {"minimum": -Infinity}}',
             "outputSchema"),
        ]  # fmt: skip
        for method, path, body, param in cases:
            r = await client.request(method, path, content=body, headers=headers)
            assert (r.status_code, r.json()["error"]["param"]) == (400, param), (path, r.text)
        assert await count_rows(app, tasks, member.organization_id) == 0
        assert await count_rows(app, schedules, member.organization_id) == 0

    def test_finite_numbers_and_such_words_in_text_pass(self) -> None:
        body = b'{"a": 1e308, "b": -2.5E-300, "c": "NaN Infinity 1e999", "d": 12345678901234567890}'
        assert decode_json_body(body)["c"] == "NaN Infinity 1e999"


class TestStrictBooleans:
    @pytest.mark.parametrize("value", [0, 1, "true", "no", "false", None])
    async def test_paused_takes_only_true_or_false(
        self, client: httpx.AsyncClient, member: Member, value: object
    ) -> None:
        worker_id = await new_worker_id(client, member)
        made = await client.post(
            f"/api/workers/{worker_id}/schedules",
            json={"input": "x", "when": {"type": "delayed", "delayInSeconds": 3600}},
            headers=member.headers,
        )
        assert made.status_code == 201, made.text
        path = f"/api/workers/{worker_id}/schedules/{made.json()['id']}"
        r = await client.patch(path, json={"paused": value}, headers=member.headers)
        assert (r.status_code, r.json()["error"]["param"]) == (400, "paused"), r.text
        shown = await client.get(path, headers=member.headers)
        assert shown.json()["paused"] is False

    @pytest.mark.parametrize("value", ["false", "true", 0, 1])
    async def test_stream_in_json_takes_only_true_or_false(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, value: object
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await client.post(
            "/api/tasks",
            json={"input": "x", "workerId": worker_id, "stream": value},
            headers=member.headers,
        )
        assert (r.status_code, r.json()["error"]["param"]) == (400, "stream"), r.text
        assert await count_rows(app, tasks, member.organization_id) == 0

    async def test_stream_in_a_form_takes_the_words(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        for word, ok in [("false", True), ("1", False), ("yes", False)]:
            r = await client.post(
                "/api/tasks",
                data={"input": "x", "workerId": worker_id, "stream": word},
                files=[("files", ("a.txt", b"a", "text/plain"))],
                headers=member.headers,
            )
            assert (r.status_code == 200) is ok, (word, r.text)
