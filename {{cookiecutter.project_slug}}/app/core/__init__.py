"""Cross-cutting parts: settings, logging, database, security, rate limiting."""
