"""Tool names and schemas: what a client lists."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from kennel.core.ids import new_id
from kennel.mcp.tools import RunArguments, general_tools, tool_names, worker_tool
from kennel.workers.repository import WorkerRow

TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")  # what the MCP specification allows


def worker(title: str, *, output_schema: dict[str, object] | None = None) -> WorkerRow:
    now = datetime.now(UTC)
    return WorkerRow(
        id=new_id("wrk"),
        organization_id="org_x",
        user_id="usr_x",
        title=title,
        summary="Does things",
        instructions="Do things.",
        instructions_version=1,
        output_schema=output_schema,
        visibility="public",
        email_local_part="x",
        created_at=now,
        updated_at=now,
        deleted_at=None,
        mcp_servers=[],
    )


class TestToolNames:
    @pytest.mark.parametrize(
        ("title", "name"),
        [
            ("Patient Beagle", "run_patient_beagle"),
            ("Café  Crème!", "run_cafe_creme"),
            ("日本語", "run_worker"),
            ("  -- ", "run_worker"),
            ("x" * 200, "run_" + "x" * 48),
        ],
    )
    def test_a_title_becomes_a_name(self, title: str, name: str) -> None:
        assert list(tool_names([worker(title)])) == [name]
        assert TOOL_NAME.fullmatch(name)

    def test_workers_sharing_a_name_each_get_the_end_of_their_id(self) -> None:
        first, second, other = worker("Daily Report"), worker("daily report"), worker("Other")
        names = tool_names([first, second, other])
        assert names == {
            f"run_daily_report_{first.id[-6:]}": first,
            f"run_daily_report_{second.id[-6:]}": second,
            "run_other": other,
        }
        # Either way round: the name does not depend on which worker is older.
        assert tool_names([second, first, other]) == names


class TestSchemas:
    def test_a_worker_tool_takes_an_input_and_answers_in_its_schema(self) -> None:
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
        tool = worker_tool("run_counter", worker("Counter", output_schema=schema))
        assert tool.output_schema == schema
        assert tool.input_schema["required"] == ["input"]
        assert tool.input_schema["additionalProperties"] is False
        assert tool.input_schema["properties"]["taskId"]["pattern"].startswith("^[A-Za-z0-9]")
        assert tool.input_schema["properties"]["budget"]["enum"] == [
            "low",
            "standard",
            "high",
            "unlimited",
        ]
        assert tool.description is not None
        assert tool.description.startswith("Counter: Does things")

    def test_general_tools_declare_what_they_answer(self) -> None:
        tools = {t.name: t for t in general_tools()}
        assert set(tools) == {
            "list_workers",
            "run_worker",
            "get_task",
            "list_schedules",
            "create_schedule",
        }
        assert tools["run_worker"].output_schema is None  # its worker's schema, if any
        for name, tool in tools.items():
            assert TOOL_NAME.fullmatch(name)
            assert tool.input_schema["type"] == "object"
            assert tool.input_schema.get("additionalProperties") is False, name
            if name != "run_worker":
                assert tool.output_schema is not None
                assert tool.output_schema["type"] == "object"
        assert tools["create_schedule"].input_schema["required"] == ["input", "when", "workerId"]

    def test_arguments_refuse_unknown_fields(self) -> None:
        with pytest.raises(ValidationError, match=r"Extra inputs"):
            RunArguments.model_validate({"input": "hi", "task_id": "t1"})  # not the alias
