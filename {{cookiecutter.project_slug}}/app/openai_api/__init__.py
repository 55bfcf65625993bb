"""The OpenAI-compatible endpoint: the agent as one model of chat completions."""
