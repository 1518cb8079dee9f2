"""The start-up block says which model server turns will call, and warns (without failing)
when nothing answers there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import fresh_database
from tests.e2e.conftest import free_port, start_live_server

pytestmark = pytest.mark.e2e


def test_an_unreachable_model_server_is_named_and_warned_about(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    env = {"KENNEL_MODEL": "openai-chat:smollm2", "OPENAI_BASE_URL": nowhere}
    with (
        fresh_database("sqlite", tmp_path) as database_url,
        start_live_server(tmp_path / "server", database_url, extra_env=env) as server,
    ):
        block = (tmp_path / "server" / "server.stdout").read_text()
        log = [json.loads(line) for line in server.log_text().splitlines() if line.strip()]
    (model_line,) = [line for line in block.splitlines() if line.strip().startswith("model ")]
    assert f"openai-chat:smollm2 at {nowhere}" in model_line
    assert "(not reachable now:" in model_line
    warned = [e for e in log if e["level"] == "WARNING" and nowhere in e["message"]]
    assert warned
    assert "model_unavailable" in warned[0]["message"]
