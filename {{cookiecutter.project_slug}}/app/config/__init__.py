"""Configuration: config.yaml's sections (sections.py, mcp.py), the environment's settings
(settings.py, keys.py: API_KEYS), and loading them once per process (loading.py).
Import each name from its module."""
