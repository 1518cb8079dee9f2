"""Request and response shapes of the MCP servers API (a Kennel extension)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NAME_PATTERN", "McpServer", "McpServerCreate", "McpServerList"]

# Lower-case letters, digits and '-': a server's name prefixes its tools' names
# (`<name>__<tool>`), which providers limit to letters, digits, '_' and '-'.
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,29}$"


class McpServerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=NAME_PATTERN,
        description="How workers name it in `mcpServers`: 1 to 30 of a-z, 0-9 and '-'.",
    )
    url: str = Field(
        max_length=2048,
        pattern=r"^https?://\S+$",
        description=(
            "The server's Streamable HTTP endpoint (https; the rules of webhook URLs apply: no"
            " loopback, private, link-local or metadata addresses)."
        ),
    )
    headers: dict[str, str] | None = Field(
        None,
        max_length=20,
        description=(
            "Headers sent with every request to it, such as `Authorization`; stored encrypted"
            " and never returned (only their names are)."
        ),
    )


class McpServer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    name: str
    url: str
    header_names: list[str] = Field(alias="headerNames")
    created_at: str = Field(alias="createdAt")


class McpServerList(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    mcp_servers: list[McpServer] = Field(alias="mcpServers")
