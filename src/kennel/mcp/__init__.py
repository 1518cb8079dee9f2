"""Kennel as an MCP server: every worker a tool, at `/mcp` (Streamable HTTP)."""

from kennel.mcp.door import MCP_METHODS, MCP_PATH, McpDoor

__all__ = ["MCP_METHODS", "MCP_PATH", "McpDoor"]
