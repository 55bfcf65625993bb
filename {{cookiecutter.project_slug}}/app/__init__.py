"""The AI agent API service."""
