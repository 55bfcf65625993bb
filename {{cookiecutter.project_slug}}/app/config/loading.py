"""Loading the settings: from the environment, .env and config.yaml, once per process; a
problem stops start-up with one line naming the setting."""

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from app.config.errors import ConfigError
from app.config.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_FILE = Path("config/config.yaml")


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, .env and the config file."""
    config_file = Path(os.environ.get("CONFIG_FILE", DEFAULT_CONFIG_FILE))
    return load_part(Settings, config=read_config_file(config_file), **overrides)


def load_part[S: BaseSettings](settings_cls: type[S], **values: Any) -> S:
    """Build the settings, or a part of them (migrations need only some); a problem is one
    ConfigError naming each setting at fault."""
    try:
        return settings_cls(**values)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {describe(exc)}") from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found (set CONFIG_FILE)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return data


def describe(error: ValidationError) -> str:
    """Name each invalid setting as the user writes it: ENV_NAME or config.yaml: section.key."""
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        if loc and loc[0] == "config":
            name = "config.yaml: " + ".".join(loc[1:])
        else:
            name = ".".join(loc).upper() or "settings"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(message if name == "settings" else f"{name}: {message}")
    return "; ".join(problems)
