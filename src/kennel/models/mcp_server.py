"""MCP servers an organization registers for its workers' agents (Streamable HTTP)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, String, Table, Text, UniqueConstraint

from kennel.models.base import JsonValue, UTCDateTime, metadata, utcnow

__all__ = ["mcp_servers"]

mcp_servers = Table(
    "mcp_servers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "organization_id",
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(40), nullable=False),  # what a worker's `mcpServers` names
    Column("url", String(2048), nullable=False),
    # The headers sent on every request (an API key, a bearer token), as a Fernet token of
    # their JSON: they are read back to be sent, so they are encrypted, never returned.
    Column("headers_sealed", Text, nullable=False, default=""),
    Column("header_names", JsonValue, nullable=False, default=list),
    Column("created_by_user_id", ForeignKey("users.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("organization_id", "name"),
)
