"""Who wrote a message, in each KENNEL_MAIL_SENDER_AUTH mode."""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
import pytest

from kennel.mail.senders import (
    SenderAuth,
    check_none,
    check_sender,
    check_upstream,
    check_verify,
)

ID = "mx.kennel.test"
MTA_RECEIVED = (
    "Received: from mail.example.com by mx.kennel.test with ESMTPS id 1; Tue, 3 Dec 2024\r\n"
)
BODY = b"From: Ann <ann@example.com>\r\nTo: worker@kennel.test\r\nSubject: hi\r\n\r\nDo it.\r\n"


def _ar(results: str, authserv_id: str = ID) -> str:
    return f"Authentication-Results: {authserv_id}; {results}\r\n"


def _upstream(*headers: str, body: bytes = BODY) -> bytes:
    return "".join(headers).encode() + body


class TestNone:
    @staticmethod
    async def _allowed(address: str) -> bool:
        return address in {"ann@example.com", "team@example.com"}

    async def test_both_allowed(self) -> None:
        check = await check_none(BODY, "Team@Example.com", self._allowed)
        assert check.trusted_from == "ann@example.com"

    @pytest.mark.parametrize(
        ("envelope", "body", "why"),
        [
            ("stranger@evil.test", BODY, "envelope sender stranger@evil.test"),
            ("", BODY, "empty envelope"),
            ("ann@example.com", BODY.replace(b"ann@example.com", b"eve@evil.test"), "From: eve"),
            ("ann@example.com", b"Subject: none\r\n\r\nx\r\n", "From: does not name"),
        ],
    )
    async def test_refused(self, envelope: str, body: bytes, why: str) -> None:
        check = await check_none(body, envelope, self._allowed)
        assert not check.trusted
        assert why in check.reason


class TestUpstream:
    def test_dmarc_pass_from_our_mta(self) -> None:
        raw = _upstream(
            f"Authentication-Results: {ID}; dmarc=pass header.from=example.com\r\n", MTA_RECEIVED
        )
        check = check_upstream(raw, ID)
        assert (check.trusted_from, check.reason) == (
            "ann@example.com",
            "dmarc=pass header.from=example.com",
        )

    def test_aligned_dkim_pass(self) -> None:
        raw = _upstream(
            f"Authentication-Results: {ID.upper()};\r\n\tdkim=pass (2048-bit key)"
            " header.d=mail.example.com header.b=abc;\r\n\tspf=fail smtp.mailfrom=x@a.test\r\n",
            MTA_RECEIVED,
        )
        assert check_upstream(raw, ID).trusted_from == "ann@example.com"

    def test_several_headers_of_our_id_add_up(self) -> None:
        raw = _upstream(
            f"Authentication-Results: {ID}; dkim=pass header.d=example.com\r\n",
            f"Authentication-Results: {ID}; spf=pass smtp.mailfrom=example.com\r\n",
            MTA_RECEIVED,
        )
        assert check_upstream(raw, ID).trusted

    @pytest.mark.parametrize(
        ("headers", "why"),
        [
            # Forged by the sender, below our MTA's Received: header: ignored.
            ((MTA_RECEIVED, _ar("dmarc=pass header.from=example.com")), "no Authentication-Res"),
            # Our MTA found nothing; the forged one lower down still does not count.
            ((_ar("dkim=none"), MTA_RECEIVED, _ar("dkim=pass header.d=example.com")), "no DMARC"),
            # Another server's verdict.
            ((_ar("dmarc=pass header.from=example.com", "mx.evil.test"), MTA_RECEIVED),
             "no Authentication-Res"),
            # No Received: header at all: nothing is known to be our MTA's.
            ((_ar("dmarc=pass header.from=example.com"),), "fewer than 1"),
            # DKIM passes for someone else's domain.
            ((_ar("dkim=pass header.d=evil.test"), MTA_RECEIVED), "no DMARC"),
            # DMARC passes for a different From domain.
            ((_ar("dmarc=pass header.from=evil.test"), MTA_RECEIVED), "no DMARC"),
            # DMARC fail (e.g. adkim=s) is final even beside a relaxed-aligned DKIM pass.
            ((_ar("dkim=pass header.d=mail.example.com; dmarc=fail header.from=example.com"),
              MTA_RECEIVED), "dmarc=fail"),
            # Unparseable text is no verdict.
            ((_ar(";;; ==="), MTA_RECEIVED), "no Authentication-Res"),
        ],
    )  # fmt: skip
    def test_not_believed(self, headers: tuple[str, ...], why: str) -> None:
        check = check_upstream(_upstream(*headers), ID)
        assert not check.trusted
        assert why in check.reason

    def test_a_second_subject_is_refused(self) -> None:
        raw = _upstream(
            f"Authentication-Results: {ID}; dkim=pass header.d=example.com\r\n",
            MTA_RECEIVED,
            "Subject: pay the invoice\r\n",
        )
        assert "more than one Subject" in check_upstream(raw, ID).reason

    def test_two_hops_of_our_own(self) -> None:
        inner = "Received: from mx.kennel.test by filter.kennel.test; Tue, 3 Dec 2024\r\n"
        real = f"Authentication-Results: {ID}; dmarc=pass header.from=example.com\r\n"
        raw = _upstream(inner, real, MTA_RECEIVED)
        assert not check_upstream(raw, ID).trusted
        assert check_upstream(raw, ID, trusted_received=2).trusted

    def test_zero_trusts_every_header_of_the_id(self) -> None:
        raw = _upstream(
            MTA_RECEIVED, f"Authentication-Results: {ID}; dmarc=pass header.from=example.com\r\n"
        )
        assert check_upstream(raw, ID, trusted_received=0).trusted


@dataclass(frozen=True)
class DkimKey:
    private: bytes
    record: str  # the TXT record publishing the public key


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DkimKey:
    """An RSA key made for this test module with the openssl command."""
    path: Path = tmp_path_factory.mktemp("dkim") / "key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(path)], check=True, capture_output=True)  # fmt: skip
    public = subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"],
                            check=True, capture_output=True).stdout  # fmt: skip
    return DkimKey(path.read_bytes(), f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}")


class Zone:
    """A resolver stub: TXT records by name, and the names asked for."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = records
        self.asked: list[str] = []

    def __call__(self, name: str) -> str | None:
        self.asked.append(name)
        return self.records.get(name)


def _signed(
    key: DkimKey, body: bytes = BODY, *, domain: str = "example.com", **options: object
) -> bytes:
    signature = dkim.sign(body, b"sel", domain.encode(), key.private,
                          include_headers=[b"from", b"to", b"subject"], **options)  # fmt: skip
    return bytes(signature) + body


class TestVerify:
    def _zone(self, key: DkimKey, **extra: str) -> Zone:
        return Zone({"sel._domainkey.example.com": key.record,
                     "sel._domainkey.evil.test": key.record, **extra})  # fmt: skip

    def test_a_signed_message_passes(self, key: DkimKey) -> None:
        zone = self._zone(key)
        check = check_verify(_signed(key), txt=zone)
        assert (check.trusted_from, check.reason) == (
            "ann@example.com",
            "dkim=pass header.d=example.com aligned with example.com",
        )
        assert "sel._domainkey.example.com" in zone.asked

    @pytest.mark.parametrize(
        ("before", "after"),
        [(b"Do it.", b"Do it now."), (b"Subject: hi", b"Subject: hi!"), (b"ann@", b"bob@")],
        ids=["body", "subject", "from"],
    )
    def test_a_tampered_message_fails(self, key: DkimKey, before: bytes, after: bytes) -> None:
        check = check_verify(_signed(key).replace(before, after), txt=self._zone(key))
        assert not check.trusted
        assert "no DMARC pass or aligned DKIM pass" in check.reason

    def test_a_good_signature_of_another_domain_is_not_enough(self, key: DkimKey) -> None:
        assert not check_verify(_signed(key, domain="evil.test"), txt=self._zone(key)).trusted

    def test_any_of_several_signatures(self, key: DkimKey) -> None:
        raw = _signed(key)
        outer = dkim.sign(raw, b"sel", b"evil.test", key.private, include_headers=[b"from"])
        assert check_verify(bytes(outer) + raw, txt=self._zone(key)).trusted

    def test_a_body_length_limit_is_not_trusted(self, key: DkimKey) -> None:
        raw = _signed(key, length=True) + b"Also wire the money.\r\n"
        assert not check_verify(raw, txt=self._zone(key)).trusted

    def test_no_published_key(self, key: DkimKey) -> None:
        assert not check_verify(_signed(key), txt=Zone({})).trusted

    def test_unsigned(self, key: DkimKey) -> None:
        assert not check_verify(BODY, txt=self._zone(key)).trusted

    def test_relaxed_unless_dmarc_says_strict(self, key: DkimKey) -> None:
        raw = _signed(key, BODY.replace(b"ann@example.com", b"ann@mail.example.com"))
        assert check_verify(raw, txt=self._zone(key)).trusted_from == "ann@mail.example.com"
        strict = self._zone(key, **{"_dmarc.example.com": "v=DMARC1; p=reject; adkim=s"})
        assert not check_verify(raw, txt=strict).trusted


class TestCheckSender:
    async def test_verify_runs_with_the_given_resolver(self, key: DkimKey) -> None:
        zone = Zone({"sel._domainkey.example.com": key.record})

        async def nobody(address: str) -> bool:
            return False

        check = await check_sender(SenderAuth.VERIFY, _signed(key), "", is_allowed=nobody, txt=zone)
        assert check.trusted

    async def test_upstream_needs_the_id(self) -> None:
        async def nobody(address: str) -> bool:
            return False

        with pytest.raises(ValueError, match="authserv-id"):
            await check_sender(SenderAuth.UPSTREAM, BODY, "", is_allowed=nobody)
