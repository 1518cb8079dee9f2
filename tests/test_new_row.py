"""`new_row`: a new row's every column for a Core insert, defaults included."""

from __future__ import annotations

from datetime import datetime

import pytest

from kennel.models import Turn
from kennel.models.base import new_row


def test_defaults_fill_what_was_not_given() -> None:
    turn = new_row(Turn, id="trn_1", task_id="tsk_1", seq=1, input="hi", instructions_version=1)
    assert set(turn) == {column.key for column in Turn.__table__.columns}
    assert (turn["budget"], turn["status"], turn["requests"]) == ("standard", "pending", 0)
    assert turn["messages"] == []
    assert isinstance(turn["created_at"], datetime)
    assert turn["created_at"].tzinfo is not None
    assert turn["started_at"] is None
    assert turn["error_code"] is None


def test_given_values_are_kept_and_read_as_attributes() -> None:
    turn = new_row(Turn, id="trn_1", task_id="t", seq=2, input="x", instructions_version=3,
                   budget="high")  # fmt: skip
    assert (turn.budget, turn.seq, turn.instructions_version) == ("high", 2, 3)
    with pytest.raises(AttributeError, match="nope"):
        _ = turn.nope


def test_mutable_defaults_are_not_shared() -> None:
    one = new_row(Turn, id="trn_1", task_id="t", seq=1, input="x", instructions_version=1)
    two = new_row(Turn, id="trn_2", task_id="t", seq=2, input="y", instructions_version=1)
    assert one["messages"] is not two["messages"]


def test_a_value_for_no_column_is_refused() -> None:
    with pytest.raises(TypeError, match="colour"):
        new_row(Turn, id="trn_1", task_id="t", seq=1, input="x", instructions_version=1,
                colour="red")  # fmt: skip
