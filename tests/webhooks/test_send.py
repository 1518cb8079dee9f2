"""Delivery attempts against real receivers on 127.0.0.1, and refusals at send time."""

from __future__ import annotations

import ipaddress
import json
import socket

import httpx
import pytest
import standardwebhooks

from kennel.core.addresses import check_url_resolving
from kennel.core.parsers import parse_networks
from kennel.webhooks import verify
from kennel.webhooks.send import Attempt, deliver
from kennel.webhooks.signing import new_event_id, new_token, webhook_headers
from tests.factories.receiver import Receiver
from tests.webhooks.conftest import StubResolver
from tests.webhooks.test_addresses import BLOCKED, UNUSUAL_IPV4

BODY = json.dumps({"type": "task.completed", "id": "tsk_1"}).encode()
LOOPBACK = parse_networks("127.0.0.0/8")


def local(server: Receiver, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def post_local(server: Receiver, path: str, *, timeout: float = 5) -> Attempt:
    """An unsigned delivery to the plain-http receiver, as in development (allow_private)."""
    return await deliver(local(server, path), BODY, {}, timeout=timeout, allow_private=True)


def no_network() -> httpx.MockTransport:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"nothing may be dialled, but {request.url} was")

    return httpx.MockTransport(refuse)


class TestDeliverToARealReceiver:
    async def test_signed_delivery_arrives_and_verifies(self, http_receiver: Receiver) -> None:
        token, event_id = new_token(), new_event_id()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Kennel/test",
            "X-Handinger-Token": token,
            **webhook_headers(event_id, BODY, [token]),
        }
        attempt = await deliver(
            local(http_receiver, "/ok"), BODY, headers, timeout=5, allow_private=True
        )
        assert attempt.ok
        assert attempt.status == 200
        assert attempt.error is None
        assert attempt.response_excerpt == "thanks"
        assert attempt.retry_after_seconds is None
        assert not attempt.gone
        assert 0 <= attempt.duration_ms < 5000
        [received] = http_receiver.received
        assert received.body == BODY
        assert received.headers["x-handinger-token"] == token
        assert received.headers["webhook-id"] == event_id
        assert received.headers["user-agent"] == "Kennel/test"
        assert received.headers["accept-encoding"] == "identity"
        assert received.headers["host"] == f"127.0.0.1:{http_receiver.port}"
        verify(token, received.headers, received.body)
        standardwebhooks.Webhook(token.encode()).verify(received.body, received.headers)

    async def test_proxy_variables_are_ignored(
        self, http_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, "http://127.0.0.1:9")
        attempt = await post_local(http_receiver, "/ok")
        assert attempt.ok
        assert http_receiver.paths() == ["/ok"]

    async def test_redirects_are_not_followed(self, http_receiver: Receiver) -> None:
        attempt = await post_local(http_receiver, "/redirect")
        assert not attempt.ok
        assert attempt.status == 307
        assert attempt.error is None
        assert http_receiver.paths() == ["/redirect"]

    async def test_a_hanging_receiver_times_out(self, http_receiver: Receiver) -> None:
        attempt = await post_local(http_receiver, "/hang", timeout=0.5)
        assert not attempt.ok
        assert attempt.status is None
        assert attempt.error == "timed out after 0.5 s"
        assert 400 <= attempt.duration_ms < 3000

    async def test_a_stalled_answer_still_counts_by_its_status(
        self, http_receiver: Receiver
    ) -> None:
        attempt = await post_local(http_receiver, "/stall", timeout=0.5)
        assert (attempt.ok, attempt.status, attempt.error) == (True, 200, None)
        assert attempt.response_excerpt == "partial"
        assert 400 <= attempt.duration_ms < 3000

    async def test_gone(self, http_receiver: Receiver) -> None:
        attempt = await post_local(http_receiver, "/gone")
        assert (attempt.ok, attempt.status, attempt.gone) == (False, 410, True)

    async def test_retry_after_in_seconds_and_as_a_date(self, http_receiver: Receiver) -> None:
        busy = await post_local(http_receiver, "/busy")
        assert (busy.ok, busy.status, busy.retry_after_seconds) == (False, 503, 7.0)
        until = await post_local(http_receiver, "/busy-until")
        assert until.retry_after_seconds is not None
        assert 25 <= until.retry_after_seconds <= 30

    async def test_server_error_keeps_the_answer(self, http_receiver: Receiver) -> None:
        attempt = await post_local(http_receiver, "/error")
        assert (attempt.ok, attempt.status, attempt.response_excerpt) == (False, 500, "boom")

    async def test_reads_at_most_one_kib_of_an_endless_answer(
        self, http_receiver: Receiver
    ) -> None:
        attempt = await post_local(http_receiver, "/endless")
        assert attempt.ok
        assert attempt.response_excerpt == "x" * 1024
        assert attempt.duration_ms < 2000  # it stopped reading rather than ran into the timeout

    async def test_excerpt_never_ends_in_half_a_character(self, http_receiver: Receiver) -> None:
        attempt = await post_local(http_receiver, "/utf8")
        assert attempt.response_excerpt == "a" + "é" * 511  # 1,023 bytes; the 1,024th is cut

    async def test_connection_refused(self) -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        attempt = await deliver(
            f"http://127.0.0.1:{port}/", BODY, {}, timeout=5, allow_private=True
        )
        assert (attempt.ok, attempt.status, attempt.error) == (False, None, "connection refused")

    async def test_a_receiver_that_hangs_up(self, http_receiver: Receiver) -> None:
        attempt = await post_local(http_receiver, "/close")
        assert attempt.error == "the server closed the connection without answering"

    async def test_the_next_address_is_tried_when_one_refuses(
        self, http_receiver: Receiver, resolver: StubResolver
    ) -> None:
        resolver.answers["hooks.test"] = ["::1", "127.0.0.1"]  # the receiver listens on IPv4 only
        attempt = await deliver(
            f"http://hooks.test:{http_receiver.port}/ok",
            BODY,
            {},
            timeout=5,
            allow_private=True,
            resolver=resolver,
        )
        assert attempt.ok
        assert http_receiver.received[0].headers["host"] == f"hooks.test:{http_receiver.port}"

    async def test_the_whole_attempt_shares_one_timeout(self) -> None:
        import asyncio

        async def slow(host: str, port: int) -> list[str]:
            await asyncio.sleep(5)
            return ["93.184.216.34"]

        attempt = await deliver(
            "https://slow.test/", BODY, {}, timeout=0.2, allow_private=False, resolver=slow
        )
        assert attempt.error == "timed out after 0.2 s"


class TestDeliverPinsTheCheckedAddress:
    async def test_tls_to_the_pinned_ip_keeps_host_and_server_name(
        self,
        tls_receiver: Receiver,
        resolver: StubResolver,
        tls_transport: httpx.AsyncHTTPTransport,
    ) -> None:
        # hooks.test exists only in the stub: success means httpx dialled the IP we checked,
        # and the certificate (DNS:hooks.test, no IP) was verified against the host name.
        resolver.answers["hooks.test"] = ["127.0.0.1"]
        attempt = await deliver(
            f"https://hooks.test:{tls_receiver.port}/ok",
            BODY,
            {},
            timeout=5,
            allow_private=False,
            allowed_networks=LOOPBACK,
            resolver=resolver,
            transport=tls_transport,
        )
        assert attempt.ok, attempt.error
        assert tls_receiver.server_names == ["hooks.test"]
        assert tls_receiver.received[0].headers["host"] == f"hooks.test:{tls_receiver.port}"

    async def test_the_certificate_must_match_the_host_name(
        self,
        tls_receiver: Receiver,
        resolver: StubResolver,
        tls_transport: httpx.AsyncHTTPTransport,
    ) -> None:
        resolver.answers["other.test"] = ["127.0.0.1"]
        attempt = await deliver(
            f"https://other.test:{tls_receiver.port}/ok",
            BODY,
            {},
            timeout=5,
            allow_private=False,
            allowed_networks=LOOPBACK,
            resolver=resolver,
            transport=tls_transport,
        )
        assert not attempt.ok
        assert attempt.error is not None
        assert attempt.error.startswith("TLS certificate rejected")
        assert "other.test" in attempt.error
        assert tls_receiver.received == []

    async def test_dns_rebinding_is_refused_at_connect(
        self,
        tls_receiver: Receiver,
        resolver: StubResolver,
        tls_transport: httpx.AsyncHTTPTransport,
    ) -> None:
        url = f"https://hooks.test:{tls_receiver.port}/ok"
        resolver.answers["hooks.test"] = ["93.184.216.34"]
        assert await check_url_resolving(url, allow_private=False, resolver=resolver) == url
        resolver.answers["hooks.test"] = ["127.0.0.1"]  # the record moves after the check
        refused = await deliver(
            url,
            BODY,
            {},
            timeout=5,
            allow_private=False,
            resolver=resolver,
            transport=tls_transport,
        )
        assert refused.error == "address 127.0.0.1 is not allowed (a loopback address)"
        assert refused.status is None
        assert tls_receiver.received == []
        allowed = await deliver(
            url,
            BODY,
            {},
            timeout=5,
            allow_private=False,
            allowed_networks=LOOPBACK,
            resolver=resolver,
            transport=tls_transport,
        )
        assert allowed.ok, allowed.error

    async def test_the_request_goes_to_the_ip_with_the_original_host(
        self, resolver: StubResolver
    ) -> None:
        seen: list[httpx.Request] = []

        def answer(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(204)

        resolver.answers["hooks.example.com"] = ["93.184.216.34"]
        attempt = await deliver(
            "https://hooks.example.com/in?x=1",
            BODY,
            {"Host": "evil.test", "X-Handinger-Token": "whk_t"},
            timeout=5,
            allow_private=False,
            resolver=resolver,
            transport=httpx.MockTransport(answer),
        )
        assert attempt.ok
        [request] = seen
        assert str(request.url) == "https://93.184.216.34/in?x=1"
        assert request.headers["host"] == "hooks.example.com"
        assert request.extensions["sni_hostname"] == "hooks.example.com"
        assert request.content == BODY


class TestDeliverRefusesAtSendTime:
    @pytest.mark.parametrize(("address", "word"), BLOCKED)
    async def test_each_blocked_class_behind_a_name(
        self, resolver: StubResolver, address: str, word: str
    ) -> None:
        resolver.answers["hooks.test"] = [address]
        attempt = await deliver(
            "https://hooks.test/",
            BODY,
            {},
            timeout=5,
            allow_private=False,
            resolver=resolver,
            transport=no_network(),
        )
        assert not attempt.ok
        assert attempt.status is None
        assert attempt.error is not None
        assert attempt.error.startswith(f"address {ipaddress.ip_address(address)} is not allowed")
        assert word in attempt.error

    @pytest.mark.parametrize(("address", "word"), BLOCKED)
    async def test_each_blocked_class_as_a_literal(self, address: str, word: str) -> None:
        host = f"[{address}]" if ":" in address else address
        attempt = await deliver(
            f"https://{host}/", BODY, {}, timeout=5, allow_private=False, transport=no_network()
        )
        assert attempt.error is not None
        assert word in attempt.error

    @pytest.mark.parametrize(("host", "meaning"), UNUSUAL_IPV4)
    async def test_unusual_ipv4_forms(self, host: str, meaning: str) -> None:
        attempt = await deliver(
            f"https://{host}/", BODY, {}, timeout=5, allow_private=False, transport=no_network()
        )
        assert attempt.error is not None
        assert attempt.error.startswith(f"address {meaning} is not allowed (")

    async def test_a_name_with_any_blocked_answer(self, resolver: StubResolver) -> None:
        resolver.answers["mixed.test"] = ["93.184.216.34", "10.0.0.7"]
        attempt = await deliver(
            "https://mixed.test/",
            BODY,
            {},
            timeout=5,
            allow_private=False,
            resolver=resolver,
            transport=no_network(),
        )
        assert attempt.error == "address 10.0.0.7 is not allowed (a private address)"

    async def test_url_rules_apply_again(self, resolver: StubResolver) -> None:
        attempt = await deliver(
            "http://hooks.test/", BODY, {}, timeout=5, allow_private=False, transport=no_network()
        )
        assert attempt.error == "The URL must use https."
        unknown = await deliver(
            "https://nowhere.test/",
            BODY,
            {},
            timeout=5,
            allow_private=False,
            resolver=resolver,
            transport=no_network(),
        )
        assert unknown.error == "The URL's host nowhere.test could not be resolved."
