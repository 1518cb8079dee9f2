"""The MCP server: the SDK's low-level `Server`, its two handlers reading the caller off the
HTTP request that carried the message (`kennel.mcp.door` put it there)."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions

from kennel import __version__
from kennel.auth import Caller
from kennel.core.runtime import Runtime
from kennel.mcp import calls
from kennel.mcp.progress import Progress
from kennel.mcp.watch import ToolWatch

__all__ = ["CALLER_SCOPE_KEY", "build_server"]

# The ASGI scope key under which the door leaves the request's `Caller`.
CALLER_SCOPE_KEY = "kennel.caller"

_INSTRUCTIONS = (
    "Kennel runs AI agent workers. Each `run_...` tool asks one worker and answers with its"
    " reply; pass the taskId a reply names to continue that conversation. A long turn answers"
    " with its task id instead: fetch the answer with get_task (waitSeconds), do not run the"
    " worker again. list_workers, list_schedules and create_schedule do what they say."
)


class _KennelServer(Server[Any]):
    """Says, at initialization, that the tool list may change (the SDK's default says not)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True),
            experimental_capabilities,
            extensions,
        )


def _caller(ctx: ServerRequestContext[Any, Any]) -> Caller:
    caller = ctx.request.scope.get(CALLER_SCOPE_KEY) if ctx.request is not None else None
    if not isinstance(caller, Caller):  # every HTTP request passes the door first
        raise RuntimeError("an MCP message arrived without the door's caller")
    return caller


def _progress(ctx: ServerRequestContext[Any, Any]) -> Progress | None:
    """A reporter when the client asked for progress (its request carries a token)."""
    meta = (ctx.params or {}).get("_meta")
    if not isinstance(meta, dict) or meta.get("progressToken") is None:
        return None
    return Progress(ctx.session.report_progress)


def build_server(rt: Runtime, watch: ToolWatch) -> Server[Any]:
    async def on_list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        caller = _caller(ctx)
        tools = await calls.list_tools(rt, caller)
        session_id = ctx.request.headers.get("mcp-session-id") if ctx.request else None
        if session_id:
            watch.listed(session_id, caller, ctx.session, tools)
        return types.ListToolsResult(tools=tools)

    async def on_call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return await calls.call_tool(
            rt, _caller(ctx), params.name, params.arguments, _progress(ctx)
        )

    return _KennelServer(
        "kennel",
        version=__version__,
        title="Kennel",
        instructions=_INSTRUCTIONS,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )
