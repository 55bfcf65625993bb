"""A settings source that reads NAME_FILE for any setting NAME (secrets mounted as files)."""

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from app.core.errors import ConfigError


class FileVariantsSource(PydanticBaseSettingsSource):
    """Read NAME_FILE for any setting NAME, as the official database images do.

    Compose and Kubernetes mount secrets as files (/run/secrets/...): pointing API_KEYS_FILE
    at one keeps the value out of the container's environment and `docker inspect`.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = f"{field_name.upper()}_FILE"
        path = self._variables().get(variable)
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text(encoding="utf-8").strip(), field_name, False
        except OSError as exc:
            raise ConfigError(f"{variable}={path} cannot be read: {exc.strerror}") from None

    @cached_property
    def _dotenv(self) -> dict[str, str]:
        env_file = self.config.get("env_file")
        if not isinstance(env_file, str | Path) or not Path(env_file).is_file():
            return {}
        return {k: v for k, v in dotenv_values(env_file).items() if v is not None}

    def _variables(self) -> dict[str, str]:
        # NAME_FILE may be set in the environment or in .env; the environment wins.
        return {**self._dotenv, **os.environ}

    def __call__(self) -> dict[str, Any]:
        values = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values
