"""`GET /metrics` of a real server after real work: a task through the official SDK, a
schedule that fires, a webhook delivered to a real receiver and mail over real SMTP, read
with prometheus-client's own parser."""

from __future__ import annotations

import secrets
import smtplib
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BACKENDS, fresh_database
from tests.e2e.conftest import LiveServer, start_live_server
from tests.e2e.test_mail import mail, smtp_port
from tests.factories.receiver import Receiver

pytestmark = pytest.mark.e2e

TOKEN = "metrics-" + secrets.token_hex(8)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp(f"metrics-{request.param}")
    env = {"KENNEL_ALLOW_PRIVATE_WEBHOOKS": "true", "KENNEL_METRICS_TOKEN": TOKEN}
    with (
        fresh_database(request.param, workdir) as database_url,
        start_live_server(workdir, database_url, backend=request.param, extra_env=env) as live,
    ):
        yield live


def scrape(server: LiveServer) -> Samples:
    """Every sample of one scrape, by name and labels, parsed by prometheus-client."""
    with server.http() as http:
        r = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_the_metrics_move_with_a_task_a_firing_a_delivery_and_mail(server: LiveServer) -> None:
    with server.http() as http:
        assert http.get("/metrics").status_code == 401  # KENNEL_METRICS_TOKEN is set
        wrong = http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    before = scrape(server)
    assert value(before, "kennel_turns_started_total") == 0
    with Receiver() as receiver, server.sdk() as sdk:
        worker = sdk.workers.create(title="Counted")
        target = receiver.url(f"/metrics-{secrets.token_hex(4)}")
        sdk.workers.webhooks.update(worker.id, url=target)

        # A task through the SDK (it waits for the answer), then its webhook event.
        done = sdk.tasks.create(input="Count the dogs", worker_id=worker.id)
        assert done.metadata["taskId"]

        # A schedule due in a second: the dispatcher fires it.
        schedule = sdk.workers.schedules.create(
            worker.id, input="Tick", when={"type": "delayed", "delay_in_seconds": 1}
        )

        # Mail: one from the organization's admin (taken in), one from a stranger (refused at
        # RCPT, as KENNEL_MAIL_SENDER_AUTH=none does), one to no worker's address.
        email = str(sdk.workers.retrieve_email(worker.id).email)
        with smtplib.SMTP("127.0.0.1", smtp_port(server), timeout=10) as client:
            client.sendmail("admin@example.com", [email], mail("admin@example.com", email, "Dogs?"))
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail(
                    "stranger@example.net", [email], mail("stranger@example.net", email, "Hi")
                )
            nobody = "nobody-" + email
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail(
                    "admin@example.com", [nobody], mail("admin@example.com", nobody, "?")
                )

        # Three turns (the task's, the firing's, the mail's), each delivered to the webhook.
        receiver.wait_for(3, timeout=60, path=target.removeprefix(receiver.url("")))

        def all_counted() -> Samples | None:
            samples = scrape(server)
            done = value(samples, "kennel_webhook_deliveries_total", outcome="success") >= 3
            return samples if done else None

        after = server.wait_for("three deliveries counted", all_counted)
        with server.http(server.api_key) as http:
            runs = http.get(f"/api/workers/{worker.id}/schedules/{schedule.id}/runs").json()
        assert [run["outcome"] for run in runs["runs"]] == ["started"]

    assert value(after, "kennel_turns_started_total") == 3
    assert value(after, "kennel_turns_ended_total", status="completed", error_code="") == 3
    assert value(after, "kennel_turn_duration_seconds_count", status="completed") == 3
    assert value(after, "kennel_model_request_duration_seconds_count") >= 3
    assert value(after, "kennel_model_request_duration_seconds_sum") > 0
    assert value(after, "kennel_tokens_total", kind="input") > 0
    assert value(after, "kennel_tokens_total", kind="output") > 0
    assert value(after, "kennel_credits_total") > 0

    assert value(after, "kennel_schedule_firings_total", outcome="started") == 1
    assert value(after, "kennel_schedule_lateness_seconds_count") == 1
    assert value(after, "kennel_schedule_lateness_seconds_sum") >= 0

    assert value(after, "kennel_webhook_deliveries_total", outcome="success") == 3
    assert value(after, "kennel_webhook_deliveries_total", outcome="error") == 0
    assert value(after, "kennel_webhook_delivery_duration_seconds_count", outcome="success") == 3

    assert value(after, "kennel_mail_accepted_total") == 1
    assert value(after, "kennel_mail_refused_total", reason="sender_not_allowed") == 1
    assert value(after, "kennel_mail_refused_total", reason="unknown_recipient") == 1
    assert value(after, "kennel_mail_intakes_total", outcome="started") == 1

    assert value(after, "kennel_turns_queued") == 0
    assert value(after, "kennel_turns_running") == 0
    assert value(after, "kennel_turns_oldest_queued_age_seconds") == 0
    assert value(after, "kennel_database_errors_total", kind="transient", where="request") == 0

    # Requests by route template, never by path: no id in any `route` label.
    posted = value(
        after, "kennel_http_requests_total", method="POST", route="/api/tasks", status_class="2xx"
    )
    assert posted >= 1
    routes = {
        dict(labels)["route"] for name, labels in after if name == "kennel_http_requests_total"
    }
    assert "/api/workers/{workerId}/webhook" in routes
    assert not [route for route in routes if "wrk_" in route or "tsk_" in route]
    assert value(after, "process_resident_memory_bytes") > 0
