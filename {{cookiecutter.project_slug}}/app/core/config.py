"""Settings: loaded once per process from the environment, .env and config.yaml.

The models live by job (sections.py: config.yaml; settings.py: the environment; api_keys.py:
API_KEYS; config_file.py: the file and error messages); their names are importable from here.
"""

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from app.core.api_keys import KEY_NAME, ApiKey, parse_api_keys
from app.core.config_file import describe, read_config_file
from app.core.errors import ConfigError
from app.core.sections import (
    AgentConfig,
    AppConfig,
    BudgetConfig,
    HealthConfig,
    LLMConfig,
    LoggingConfig,
    MetricsConfig,
    OpenAIApiConfig,
    PlaygroundConfig,
    PriceConfig,
    RateLimitConfig,
    RedisConfig,
    RequestsConfig,
    UploadsConfig,
    WorkerConfig,
)
from app.core.settings import DatabaseSettings, KeySettings, Settings

# The names the rest of the app (and a team's own code) imports from here.
__all__ = [
    "DEFAULT_CONFIG_FILE",
    "KEY_NAME",
    "PROJECT_ROOT",
    "AgentConfig",
    "ApiKey",
    "AppConfig",
    "BudgetConfig",
    "ConfigError",
    "DatabaseSettings",
    "HealthConfig",
    "KeySettings",
    "LLMConfig",
    "LoggingConfig",
    "MetricsConfig",
    "OpenAIApiConfig",
    "PlaygroundConfig",
    "PriceConfig",
    "RateLimitConfig",
    "RedisConfig",
    "RequestsConfig",
    "Settings",
    "UploadsConfig",
    "WorkerConfig",
    "get_settings",
    "load_part",
    "load_settings",
    "parse_api_keys",
    "read_config_file",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_FILE = Path("config/config.yaml")


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, .env and the config file."""
    config_file = Path(os.environ.get("CONFIG_FILE", DEFAULT_CONFIG_FILE))
    raw_config = read_config_file(config_file)
    try:
        return Settings(config=raw_config, **overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {describe(exc)}") from None


def load_part[S: BaseSettings](settings_cls: type[S]) -> S:
    """Build one part of the settings (migrations need only some), failing as load_settings does."""
    try:
        return settings_cls()
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {describe(exc)}") from None


@lru_cache
def get_settings() -> Settings:
    """Return the settings, read once per process."""
    return load_settings()
