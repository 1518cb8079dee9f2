"""`insert_values`: a transient row's column values for a Core insert, defaults included."""

from __future__ import annotations

from datetime import datetime

from kennel.models import Turn
from kennel.models.base import insert_values


def test_defaults_fill_what_was_not_set_on_the_row_and_in_the_values() -> None:
    turn = Turn(id="trn_1", task_id="tsk_1", seq=1, input="hi", instructions_version=1)
    values = insert_values(turn)
    assert set(values) == {column.key for column in Turn.__table__.columns}
    assert (values["budget"], values["status"], values["requests"]) == ("standard", "pending", 0)
    assert values["messages"] == []
    assert turn.messages == []
    assert isinstance(values["created_at"], datetime)
    assert values["created_at"].tzinfo is not None
    assert turn.created_at == values["created_at"]
    assert values["started_at"] is None
    assert values["error_code"] is None


def test_values_set_on_the_row_are_kept_and_mutable_defaults_are_not_shared() -> None:
    one = Turn(id="trn_1", task_id="t", seq=2, input="x", instructions_version=3, budget="high")
    two = Turn(id="trn_2", task_id="t", seq=3, input="y", instructions_version=3)
    first, second = insert_values(one), insert_values(two)
    assert (first["budget"], first["seq"], first["instructions_version"]) == ("high", 2, 3)
    assert first["messages"] is not second["messages"]
