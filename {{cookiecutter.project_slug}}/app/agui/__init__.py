"""The AG-UI protocol: a conversation's turn for AG-UI clients (HttpAgent, CopilotKit)."""
