"""Conversations with the agent: messages in, model replies out."""
