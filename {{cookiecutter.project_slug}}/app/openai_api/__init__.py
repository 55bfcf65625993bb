"""OpenAI's chat-completions format: its request and response shapes, and a turn in it."""
