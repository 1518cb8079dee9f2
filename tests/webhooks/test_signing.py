"""Signatures a receiver can check with `kennel.webhooks.verify` and with `standardwebhooks`."""

from __future__ import annotations

import binascii
import json
import time

import pytest
import standardwebhooks

from kennel.core.ids import is_valid_id
from kennel.webhooks import WebhookVerificationError, verify
from kennel.webhooks.signing import new_event_id, new_token, signature_header, webhook_headers

BODY = json.dumps({"type": "task.completed", "task": {"title": "Zürich ☃"}}).encode()


def signed(tokens: list[str], *, timestamp: int | None = None, body: bytes = BODY) -> dict:
    return webhook_headers("msg_test", body, tokens, timestamp=timestamp)


class TestNewToken:
    def test_long_random_url_safe_prefixed(self) -> None:
        tokens = {new_token() for _ in range(100)}
        assert len(tokens) == 100
        for token in tokens:
            assert token.startswith("whk_")
            body = token.removeprefix("whk_")
            assert len(body) >= 43  # 32 bytes, unpadded base64
            assert set(body) <= set(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            )


class TestNewEventId:
    def test_unique_and_prefixed(self) -> None:
        ids = {new_event_id() for _ in range(1000)}
        assert len(ids) == 1000
        assert all(is_valid_id(event_id, "msg") for event_id in ids)


class TestSignatureHeader:
    def test_one_v1_entry_per_token(self) -> None:
        header = signature_header("msg_1", 1_700_000_000, BODY, ["whk_a", "whk_b"])
        entries = header.split(" ")
        assert len(entries) == 2
        assert all(entry.startswith("v1,") for entry in entries)
        assert entries[0] != entries[1]

    def test_matches_the_specification_by_hand(self) -> None:
        import base64
        import hashlib
        import hmac

        mac = hmac.new(b"whk_secret", b"msg_1.1700000000." + BODY, hashlib.sha256).digest()
        assert signature_header("msg_1", 1_700_000_000, BODY, ["whk_secret"]) == (
            "v1," + base64.b64encode(mac).decode()
        )

    def test_refuses_no_token(self) -> None:
        with pytest.raises(ValueError, match="at least one token"):
            signature_header("msg_1", 1, BODY, [])
        with pytest.raises(ValueError, match="no empty"):
            signature_header("msg_1", 1, BODY, [""])


class TestVerify:
    def test_kennel_and_standardwebhooks_both_accept(self) -> None:
        token = new_token()
        headers = signed([token])
        verify(token, headers, BODY)
        assert standardwebhooks.Webhook(token.encode()).verify(BODY, headers) == json.loads(BODY)

    def test_rotation_both_tokens_verify(self) -> None:
        old, new = new_token(), new_token()
        headers = signed([new, old])
        for token in (old, new):
            verify(token, headers, BODY)
            standardwebhooks.Webhook(token.encode()).verify(BODY, headers)
        with pytest.raises(WebhookVerificationError, match="no matching signature"):
            verify(new_token(), headers, BODY)

    def test_header_names_are_case_insensitive(self) -> None:
        token = new_token()
        headers = {name.upper(): value for name, value in signed([token]).items()}
        verify(token, headers, BODY)
        verify(token, headers, BODY.decode())

    def test_tampered_body_refused(self) -> None:
        token = new_token()
        headers = signed([token])
        tampered = BODY.replace(b"completed", b"failed")
        with pytest.raises(WebhookVerificationError, match="no matching signature"):
            verify(token, headers, tampered)
        with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
            standardwebhooks.Webhook(token.encode()).verify(tampered, headers)

    def test_wrong_token_refused(self) -> None:
        headers = signed([new_token()])
        with pytest.raises(WebhookVerificationError, match="no matching signature"):
            verify(new_token(), headers, BODY)

    def test_tampered_id_or_timestamp_refused(self) -> None:
        token = new_token()
        headers = signed([token])
        with pytest.raises(WebhookVerificationError):
            verify(token, {**headers, "webhook-id": "msg_other"}, BODY)
        later = str(int(headers["webhook-timestamp"]) + 1)
        with pytest.raises(WebhookVerificationError):
            verify(token, {**headers, "webhook-timestamp": later}, BODY)

    def test_timestamp_tolerance(self) -> None:
        token = new_token()
        now = int(time.time())
        for stamp in (now - 301, now + 301):
            with pytest.raises(WebhookVerificationError, match="tolerance"):
                verify(token, signed([token], timestamp=stamp), BODY)
        verify(token, signed([token], timestamp=now - 250), BODY)
        verify(token, signed([token], timestamp=now - 3000), BODY, tolerance=3600)

    @pytest.mark.parametrize(
        "change",
        [
            {"webhook-signature": ""},
            {"webhook-id": ""},
            {"webhook-timestamp": "soon"},
            {"webhook-timestamp": "-5"},
            {"webhook-signature": "v2,abc v1"},
            {"webhook-signature": "v1,not*base64"},
        ],
    )
    def test_malformed_headers_refused(self, change: dict[str, str]) -> None:
        token = new_token()
        with pytest.raises(WebhookVerificationError):
            verify(token, {**signed([token]), **change}, BODY)

    def test_unknown_versions_are_skipped(self) -> None:
        token = new_token()
        headers = signed([token])
        headers["webhook-signature"] = "v1a,xyz " + headers["webhook-signature"]
        verify(token, headers, BODY)

    def test_missing_headers_refused(self) -> None:
        with pytest.raises(WebhookVerificationError, match="missing"):
            verify(new_token(), {}, BODY)

    def test_standardwebhooks_needs_the_token_as_bytes(self) -> None:
        # Webhook(str) base64-decodes its argument: an error or a different key, depending
        # on the token's length. The docs say Webhook(token.encode()).
        token = new_token()
        with pytest.raises((binascii.Error, standardwebhooks.webhooks.WebhookVerificationError)):
            standardwebhooks.Webhook(token).verify(BODY, signed([token]))
