"""Addresses: compared in lower case; plus-addressing."""

from __future__ import annotations

import pytest

from kennel.mail.addresses import split_address


class TestSplitAddress:
    @pytest.mark.parametrize(
        ("address", "parts"),
        [
            ("worker@kennel.test", ("worker", None, "kennel.test")),
            ("Worker+Invoices@Kennel.Test", ("worker", "invoices", "kennel.test")),
            ("worker+a+b@kennel.test", ("worker", "a+b", "kennel.test")),
            ("worker+@kennel.test", ("worker", None, "kennel.test")),
        ],
    )
    def test_parts(self, address: str, parts: tuple[str, str | None, str]) -> None:
        assert split_address(address) == parts

    @pytest.mark.parametrize("address", ["worker", "@kennel.test", "worker@", "+tag@kennel.test"])
    def test_not_an_address(self, address: str) -> None:
        with pytest.raises(ValueError, match=r"address|mailbox"):
            split_address(address)
