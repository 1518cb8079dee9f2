"""HTTP routes of the MCP servers API (a Kennel extension): parse, authorize, call the service."""

from __future__ import annotations

from fastapi import APIRouter, Request

from kennel.api.http import KennelRoute
from kennel.auth import CallerDep
from kennel.core.runtime import of_request
from kennel.core.timestamps import iso_z
from kennel.mcp_servers import service
from kennel.mcp_servers.repository import ServerRow
from kennel.mcp_servers.schemas import McpServer, McpServerCreate, McpServerList

__all__ = ["router"]

router = APIRouter(prefix="/api/mcp-servers", tags=["MCP servers"], route_class=KennelRoute)


def _server(row: ServerRow) -> McpServer:
    return McpServer(
        id=row.id,
        name=row.name,
        url=row.url,
        header_names=row.header_names,
        created_at=iso_z(row.created_at),
    )


@router.get("", response_model=McpServerList)
async def list_mcp_servers(request: Request, caller: CallerDep) -> McpServerList:
    """The organization's MCP servers, by name (a Kennel extension); headers are never
    returned, only their names."""
    rows = await service.list_servers(of_request(request).db, caller)
    return McpServerList(mcp_servers=[_server(row) for row in rows])


@router.post("", status_code=201, response_model=McpServer)
async def register_mcp_server(
    body: McpServerCreate, request: Request, caller: CallerDep
) -> McpServer:
    """Register an MCP server (Streamable HTTP) whose tools workers may use by naming it in
    their `mcpServers` (a Kennel extension)."""
    rt = of_request(request)
    row = await service.register_server(
        rt.db, rt.settings, caller, name=body.name, url=body.url, headers=body.headers
    )
    return _server(row)


@router.delete("/{mcpServerName}", response_model=McpServerList)
async def remove_mcp_server(
    mcpServerName: str, request: Request, caller: CallerDep
) -> McpServerList:
    """Remove an MCP server (a Kennel extension); workers that name it go on without its
    tools. Answers the servers that remain."""
    rt = of_request(request)
    await service.remove_server(rt.db, caller, mcpServerName)
    rows = await service.list_servers(rt.db, caller)
    return McpServerList(mcp_servers=[_server(row) for row in rows])
