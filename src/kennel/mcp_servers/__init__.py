"""MCP servers an organization registers, whose tools its workers' agents may call.

A server is reached over Streamable HTTP at its URL, with the headers given at registration
(kept encrypted, never returned). A worker names the servers it uses (`mcpServers`); each of
its turns lists their tools once and calls them, every list and call a DBOS step.
"""
