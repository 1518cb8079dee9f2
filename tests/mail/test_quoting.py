"""Trimming a reply's quoted history."""

from __future__ import annotations

import pytest

from kennel.mail.quoting import trim_quoted

CASES = {
    "gmail": (
        "Sounds good.\n\nOn Tue, Dec 3, 2024 at 10:00 AM Worker <worker@kennel.test> wrote:\n"
        "> Here is the summary.\n> Shall I send it?\n",
        "Sounds good.",
    ),
    "gmail wrapped": (
        "Thanks!\n\nOn Tue, Dec 3, 2024 at 10:00 AM A Very Long Display Name <\n"
        "worker@kennel.test> wrote:\n\n> old\n",
        "Thanks!",
    ),
    "german": ("Danke.\n\nAm 03.12.2024 um 10:00 schrieb Worker:\n> alt\n", "Danke."),
    "french": ("Merci.\n\nLe mar. 3 déc. 2024, Worker a écrit :\n> vieux\n", "Merci."),
    "outlook original": (
        "Approved.\n\n-----Original Message-----\nFrom: Worker\nSent: Tuesday\n\nold text\n",
        "Approved.",
    ),
    "outlook rule": (
        "Fine by me.\n\n________________________________\nFrom: Worker <worker@kennel.test>\n"
        "Sent: Tuesday, December 3, 2024 10:00\nTo: Ann\nSubject: report\n\nold text\n",
        "Fine by me.",
    ),
    "outlook bold": (
        "OK\n\n*From:* Worker\n*Date:* Tuesday\n\nold\n",
        "OK",
    ),
    "interleaved": (
        "> Which quarter?\nThe third.\n> Which format?\nPDF please.\n",
        "The third.\nPDF please.",
    ),
    "nothing quoted": (
        "On second thought, use CSV.\nThanks",
        "On second thought, use CSV.\nThanks",
    ),
    "only quoted keeps all": ("> everything is quoted\n", "> everything is quoted"),
}


@pytest.mark.parametrize(("text", "trimmed"), CASES.values(), ids=CASES.keys())
def test_trim(text: str, trimmed: str) -> None:
    assert trim_quoted(text) == trimmed
