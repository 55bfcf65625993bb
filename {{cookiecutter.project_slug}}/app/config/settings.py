"""The settings models: secrets and URLs from the environment (a NAME_FILE variable names
a file holding NAME), the rest from config.yaml."""

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import quote, urlsplit, urlunsplit

from dotenv import dotenv_values
from pydantic import SecretStr, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.config.errors import ConfigError
from app.config.keys import ApiKey, parse_api_keys
from app.config.sections import AppConfig


def async_database_url(url: str) -> str:
    """Return the URL with the asyncpg driver, accepting the usual postgresql:// form."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("must be a postgresql:// URL") from None
    if parsed.get_backend_name() not in {"postgresql", "postgres"}:
        raise ValueError("must be a postgresql:// URL")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def with_password(url: str, password: SecretStr | str | None) -> str:
    """Put the password, if any, into a URL that has none (given apart: a secret file)."""
    if isinstance(password, SecretStr):
        password = password.get_secret_value()
    parts = urlsplit(url)
    if password is None or parts.password is not None or not parts.hostname:
        return url
    user = parts.username or ""
    netloc = f"{user}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


class FileVariantsSource(PydanticBaseSettingsSource):
    """Read NAME_FILE for any setting NAME, as the official database images do: Compose and
    Kubernetes mount secrets as files (/run/secrets/...), and pointing API_KEYS_FILE at one
    keeps the value out of the container's environment and `docker inspect`."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # abstract in the base class; __call__ reads them all

    def __call__(self) -> dict[str, Any]:
        env_file = self.config.get("env_file")
        dotenv = dotenv_values(env_file) if isinstance(env_file, str | Path) else {}
        # NAME_FILE may be set in the environment or in .env; the environment wins.
        variables = {**dotenv, **os.environ}
        values = {}
        for name in self.settings_cls.model_fields:
            variable = f"{name.upper()}_FILE"
            if path := variables.get(variable):
                try:
                    values[name] = Path(path).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ConfigError(f"{variable}={path} cannot be read: {exc.strerror}") from None
        return values


class _EnvSettings(BaseSettings):
    """Values from the environment, NAME_FILE variants and .env, in that order."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = FileVariantsSource(settings_cls)
        return init_settings, env_settings, files, dotenv_settings, file_secret_settings


class DatabaseSettings(_EnvSettings):
    """The part of the settings that migrations need: the database URL and password."""

    # The password before the URL, so that it is validated (in info.data) when the URL is,
    # which merges it in.
    database_password: SecretStr | None = None
    database_url: SecretStr

    @field_validator("database_url")
    @classmethod
    def _asyncpg_with_password(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        url = async_database_url(value.get_secret_value())
        return SecretStr(with_password(url, info.data.get("database_password")))


class KeySettings(_EnvSettings):
    """Who may call the api, and the secret that turns a key into the owner of its rows."""

    api_keys: Annotated[tuple[ApiKey, ...], NoDecode]
    secret_key: SecretStr

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return parse_api_keys(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _some_key(self) -> Self:
        if not self.api_keys:
            raise ValueError("API_KEYS must hold at least one key")
        return self


class Settings(DatabaseSettings, KeySettings):
    """Everything the service reads at start-up."""

    environment: Literal["development", "test", "production"] = "production"
    # The password before the URL: validating the URL merges it in.
    redis_password: SecretStr | None = None
    redis_url: SecretStr
    # The key of each model provider, read only when llm.provider names it.
    openai_api_key: SecretStr | None = None
    anthropic_api_key: SecretStr | None = None
    gemini_api_key: SecretStr | None = None
    logs_dir: Path = Path("logs")
    uploads_dir: Path = Path("uploads")
    config: AppConfig

    def key_of(self, provider: str) -> SecretStr | None:
        """The key of a model provider (None for echo, which needs none)."""
        return getattr(self, f"{provider}_api_key", None)

    @property
    def playground_enabled(self) -> bool:
        enabled = self.config.playground.enabled
        return self.environment == "development" if enabled == "auto" else enabled

    @field_validator("openai_api_key", "anthropic_api_key", "gemini_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme_with_password(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return SecretStr(with_password(url, info.data.get("redis_password")))

    @model_validator(mode="after")
    def _secrets_are_real(self) -> Self:
        for position, link in enumerate(self.config.llm.chain):
            provider = link.provider
            where = "llm.fallbacks names" if position else "llm.provider is"
            if provider != "echo" and self.key_of(provider) is None:
                raise ValueError(f"{provider.upper()}_API_KEY is required when {where} {provider}")
        secrets = [
            ("SECRET_KEY", self.secret_key.get_secret_value()),
            ("DATABASE_URL password", make_url(self.database_url.get_secret_value()).password),
            ("REDIS_URL password", urlsplit(self.redis_url.get_secret_value()).password),
            *(("API_KEYS", key.value.get_secret_value()) for key in self.api_keys),
        ]
        for provider in dict.fromkeys(link.provider for link in self.config.llm.chain):
            if (key := self.key_of(provider)) is not None:
                secrets.append((f"{provider.upper()}_API_KEY", key.get_secret_value()))
        unsafe = [name for name, value in secrets if not value or value.startswith("change-me")]
        if unsafe and self.environment not in {"development", "test"}:
            raise ValueError(f"{unsafe[0]} is empty or a placeholder; set a real secret")
        return self
