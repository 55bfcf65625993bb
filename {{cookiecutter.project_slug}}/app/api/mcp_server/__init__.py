"""The agent as an MCP server at /mcp: tools that take their turns and runs from the same
places as /v1 (flows.messages, runs.service), behind the same keys and bounds."""
