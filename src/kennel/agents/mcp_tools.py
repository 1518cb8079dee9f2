"""The tools of the MCP servers a worker names, as one toolset for its turn.

pydantic-ai's own MCP toolsets cannot be given to a durable agent per run (its DBOS
integration refuses MCP toolsets passed at run time, and a worker's servers are known only
then), so each turn lists the servers' tools in one DBOS step and offers them as function
tools whose calls are DBOS steps: a turn recovered after a crash neither lists nor calls
again what it already did. The servers are reached with the official `mcp` SDK's client
(`kennel.mcp_servers.client`). A tool is named `<server>__<tool>`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from dbos import DBOS
from pydantic_ai import ModelRetry, Tool
from pydantic_ai.toolsets import FunctionToolset

from kennel.agents.tools import TurnDeps
from kennel.core import runtime
from kennel.mcp_servers.service import call_server_tool, list_server_tools

__all__ = ["MCP_RESULT_KEY", "mcp_toolset"]

MCP_RESULT_KEY = "mcpServer"  # a tool return holding it is an MCP tool's (see turn sources)
_NAME_LIMIT = 64  # what providers accept as a tool name


@DBOS.step()
async def _list_mcp_tools(organization_id: str, names: list[str]) -> dict[str, dict[str, Any]]:
    rt = runtime.current()
    listed = await list_server_tools(rt.db, rt.settings, organization_id, names)
    return {
        name: {"tools": [asdict(tool) for tool in found.tools], "error": found.error}
        for name, found in listed.items()
    }


@DBOS.step()
async def _call_mcp_tool(
    organization_id: str, server: str, tool: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    rt = runtime.current()
    called = await call_server_tool(rt.db, rt.settings, organization_id, server, tool, arguments)
    return asdict(called)


async def mcp_toolset(
    organization_id: str, names: Sequence[str]
) -> tuple[FunctionToolset[TurnDeps] | None, list[str]]:
    """The servers' tools as one toolset (None without any), and a sentence for each server
    whose tools could not be listed."""
    listed = await _list_mcp_tools(organization_id, list(names))
    tools: dict[str, Tool[TurnDeps]] = {}
    problems: list[str] = []
    for server, found in listed.items():
        if found["error"]:
            problems.append(f"The MCP server {server!r} could not be used: {found['error']}.")
        for remote in found["tools"]:
            name = _tool_name(server, remote["name"])
            if name not in tools:
                tools[name] = _tool(organization_id, server, remote, name)
    return (FunctionToolset(list(tools.values())) if tools else None), problems


def _tool_name(server: str, tool: str) -> str:
    return f"{server}__{re.sub(r'[^A-Za-z0-9_-]', '_', tool)}"[:_NAME_LIMIT]


def _tool(organization_id: str, server: str, remote: dict[str, Any], name: str) -> Tool[TurnDeps]:
    remote_name = str(remote["name"])

    async def call(**arguments: Any) -> dict[str, Any]:
        answer = await _call_mcp_tool(organization_id, server, remote_name, arguments)
        if answer["error"]:
            raise ModelRetry(f"{server} {remote_name}: {answer['error']}")
        return {
            MCP_RESULT_KEY: server,
            "tool": remote_name,
            "content": answer["text"],
            "links": answer["links"],
        }

    return Tool.from_schema(
        call,
        name=name,
        description=f"{remote['description']} (from the MCP server {server})",
        json_schema=remote["input_schema"],
    )
