"""The error that stops the service at start-up, with one line saying why."""


class ConfigError(Exception):
    """The service cannot start: a setting is missing, malformed or unsafe."""
