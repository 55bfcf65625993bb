"""Reading config.yaml, and describing invalid settings in one line."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.core.errors import ConfigError


def read_config_file(path: Path) -> dict[str, Any]:
    """Read config.yaml, failing with a message that names the file."""
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
