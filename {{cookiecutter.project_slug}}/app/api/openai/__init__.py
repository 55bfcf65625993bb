"""The OpenAI-compatible way in: GET /v1/models, POST /v1/chat/completions (router.py), the
wire format (wire.py: messages in, a completion or chunks out) and its shapes (schemas.py)."""
