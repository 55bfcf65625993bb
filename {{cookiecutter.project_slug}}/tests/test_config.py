from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from app.config.errors import ConfigError
from app.config.loading import DEFAULT_CONFIG_FILE, PROJECT_ROOT, load_settings, read_config_file
from app.config.sections import AppConfig
from app.config.settings import Settings
from app.main import create_app

GOOD_ENV = {
    "ENVIRONMENT": "production",
    "DATABASE_URL": "postgresql://svc:s3cret-db@db:5432/svc",
    "REDIS_URL": "redis://:s3cret-redis@redis:6379/0",
    "API_KEYS": "key-one, key-two",
    "SECRET_KEY": "a-real-secret",
    "OPENAI_API_KEY": "",
}


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file named by CONFIG_FILE, and an environment that holds only GOOD_ENV."""
    path = tmp_path / "config.yaml"
    path.write_text("llm:\n  provider: echo\n")
    monkeypatch.chdir(tmp_path)  # no .env of the project is read
    monkeypatch.setenv("CONFIG_FILE", str(path))
    for name, value in GOOD_ENV.items():
        monkeypatch.setenv(name, value)
    return path


def test_settings_come_from_env_and_the_config_file(config_file: Path) -> None:
    config_file.write_text("llm:\n  provider: echo\n  system_prompt: Be brief.\n")

    settings = load_settings()

    assert settings.config.llm.system_prompt == "Be brief."
    assert [key.value.get_secret_value() for key in settings.api_keys] == ["key-one", "key-two"]
    assert settings.database_url.get_secret_value().startswith("postgresql+asyncpg://svc:")
    assert settings.openai_api_key is None


def test_the_shipped_config_file_is_valid(config_file: Path) -> None:
    shipped = Path(__file__).parents[1] / "config" / "config.yaml"
    config_file.write_text(shipped.read_text())

    keys = {f"{provider}_api_key": "real-key" for provider in ("openai", "anthropic", "gemini")}
    settings = load_settings(**keys)

    assert settings.config.uploads.max_bytes > 0


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("llm:\n  providr: echo\n", "config.yaml: llm.providr: Extra inputs are not permitted"),
        ("llm:\n  timeout_seconds: -1\n", "config.yaml: llm.timeout_seconds: Input should be"),
        ("rate_limit:\n  requests: many\n", "config.yaml: rate_limit.requests"),
        ("llm: [unclosed\n", "cannot be read"),
        ("- a list\n", "must hold a mapping of sections"),
        ("requests:\n  max_wait_seconds: 60\n", "config.yaml: requests.max_wait_seconds: Input"),
        ("requests:\n  max_waiting: -1\n", "config.yaml: requests.max_waiting: Input should be"),
    ],
    ids=[
        "unknown-key",
        "negative-timeout",
        "wrong-type",
        "bad-yaml",
        "not-a-mapping",
        "wait-too-long",
        "negative-waiting",
    ],
)
def test_bad_config_names_the_key(config_file: Path, yaml_text: str, fragment: str) -> None:
    config_file.write_text(yaml_text)

    with pytest.raises(ConfigError, match=None) as raised:
        load_settings()

    assert fragment in str(raised.value)


def test_missing_config_file_names_the_path(config_file: Path) -> None:
    config_file.unlink()

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert f"config file {config_file} not found" in str(raised.value)


def test_empty_config_file_means_defaults(config_file: Path) -> None:
    config_file.write_text("")

    assert load_settings().config.llm.provider == "echo"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SECRET_KEY": "change-me-secret-key"}, "SECRET_KEY"),
        ({"API_KEYS": "good-key,change-me-api-key"}, "API_KEYS"),
        ({"API_KEYS": "mobile:change-me-api-key"}, "API_KEYS"),
        ({"DATABASE_URL": "postgresql://svc:change-me-db-password@db/svc"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://svc@db/svc"}, "DATABASE_URL"),
        ({"REDIS_URL": "redis://redis:6379/0"}, "REDIS_URL"),
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
    ],
    ids=[
        "secret-key",
        "api-key",
        "named-api-key",
        "db-password",
        "db-no-password",
        "redis-no-password",
        "empty",
    ],
)
def test_placeholder_secrets_are_refused_outside_development(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as raised:
        load_settings()
    monkeypatch.setenv("ENVIRONMENT", "development")
    relaxed = load_settings()

    assert named in str(raised.value)
    assert "placeholder" in str(raised.value)
    assert relaxed.environment == "development"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"DATABASE_URL": "mysql://u:p@h/d"}, "DATABASE_URL: must be a postgresql://"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL: must be a postgresql://"),
        ({"REDIS_URL": "http://redis"}, "REDIS_URL: must be a redis://"),
        ({"API_KEYS": " , "}, "API_KEYS must hold at least one key"),
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT: Input should be"),
    ],
    ids=["db-scheme", "db-not-a-url", "redis-scheme", "no-api-keys", "unknown-environment"],
)
def test_bad_environment_values_are_named(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], fragment: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert fragment in str(raised.value)


def test_api_keys_may_be_named_for_rotation(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_KEYS", "mobile:key-one, key-two ,web.app@acme:key-three")

    keys = load_settings().api_keys

    assert [(key.name, key.value.get_secret_value()) for key in keys] == [
        ("mobile", "key-one"),
        (None, "key-two"),
        ("web.app@acme", "key-three"),
    ]


@pytest.mark.parametrize(
    ("api_keys", "fragment"),
    [
        ("key-one,bad name:s3cret-part", "entry 2: a key name is 1-64 letters"),
        (":s3cret-part", "entry 1: a key name is"),
        ("mobile:", "entry 1 (mobile) has no key after the ':'"),
        ("s3cret-part,mobile:s3cret-part", "the same key is listed twice"),
    ],
    ids=["space-in-name", "empty-name", "empty-key", "duplicate-key"],
)
def test_bad_api_keys_are_named_by_position_without_echoing_them(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, api_keys: str, fragment: str
) -> None:
    monkeypatch.setenv("API_KEYS", api_keys)

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert f"API_KEYS: {fragment}" in str(raised.value)
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_provider_needs_a_real_key_of_its_own(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    config_file.write_text(f"llm:\n  provider: {provider}\n")
    name = f"{provider.upper()}_API_KEY"
    # Another provider's key does not do.
    others = {"openai", "anthropic", "gemini"} - {provider}
    for other in others:
        monkeypatch.setenv(f"{other.upper()}_API_KEY", "a-real-key")

    with pytest.raises(ConfigError) as missing:
        load_settings()
    monkeypatch.setenv(name, "change-me")
    with pytest.raises(ConfigError) as placeholder:
        load_settings()
    monkeypatch.setenv(name, "sk-real")
    settings: Settings = load_settings()

    assert f"{name} is required when llm.provider is {provider}" in str(missing.value)
    assert f"{name} is empty or a placeholder" in str(placeholder.value)
    key = settings.key_of(provider)
    assert key is not None
    assert key.get_secret_value() == "sk-real"


def test_create_app_stops_with_one_line_on_bad_config(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text("health:\n  timeout_seconds: zero\n")
    monkeypatch.setattr("app.config.loading.get_settings.__wrapped__", _uncached)

    with pytest.raises(SystemExit) as raised:
        create_app()

    message = str(raised.value)
    assert message.startswith("configuration error: invalid settings: config.yaml: health")
    assert "\n" not in message


def _uncached(*_: Any) -> Settings:
    return load_settings()


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (
            "spend:\n  budgets:\n    default: {usd_per_day: -1}\n",
            "spend.budgets.default.usd_per_day",
        ),
        ("spend:\n  budgets:\n    keys: {alice: {tokens: 5}}\n", "spend.budgets.keys.alice.tokens"),
        (
            "llm: {provider: openai, model: my-own-model}\n"
            "spend:\n  budgets:\n    default: {usd_per_month: 10}\n",
            "openai:my-own-model has no known price",
        ),
        (
            "llm:\n  fallbacks: [{provider: gemini, model: my-gemini}]\n"
            "spend:\n  budgets:\n    keys: {alice: {usd_per_day: 1}}\n",
            "gemini:my-gemini has no known price",
        ),
    ],
    ids=["negative", "unknown-bound", "unpriced-model", "unpriced-fallback"],
)
def test_a_bad_budget_stops_start_up_with_one_line_naming_it(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, config: str, named: str
) -> None:
    config_file.write_text(config)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    monkeypatch.setenv("GEMINI_API_KEY", "g-real")
    # get_settings reads the settings once per process: read them anew for this file.
    monkeypatch.setattr("app.main.get_settings", load_settings)

    with pytest.raises(SystemExit) as raised:
        create_app()

    message = str(raised.value)
    assert message.startswith("configuration error: ")
    assert named in message.replace("config.yaml: ", "")
    assert "\n" not in message


def test_a_model_priced_in_config_may_have_a_budget_in_dollars(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text(
        "llm: {provider: openai, model: my-own-model}\n"
        "spend:\n"
        '  prices: {"openai:my-own-model": {input: 0, output: 0}}\n'
        "  budgets: {default: {usd_per_day: 1}}\n"
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    # get_settings reads the settings once per process: read them anew for this file.
    monkeypatch.setattr("app.main.get_settings", load_settings)

    assert create_app().title


def test_secrets_can_come_from_files(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "API_KEYS": "file-key-1,file-key-2",
        "SECRET_KEY": "file-secret",
        "DATABASE_PASSWORD": "db p@ss/word",
        "REDIS_PASSWORD": "redis-file-pass",
    }
    for name, value in secrets.items():
        path = tmp_path / name.lower()
        path.write_text(value + "\n")
        monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(f"{name}_FILE", str(path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://svc@db:5432/svc")
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")

    settings = load_settings()

    assert [k.value.get_secret_value() for k in settings.api_keys] == ["file-key-1", "file-key-2"]
    assert settings.secret_key.get_secret_value() == "file-secret"
    assert settings.database_url.get_secret_value() == (
        "postgresql+asyncpg://svc:db%20p%40ss%2Fword@db:5432/svc"
    )
    assert settings.redis_url.get_secret_value() == "redis://:redis-file-pass@redis:6379/0"


def test_unreadable_secret_file_is_named(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("SECRET_KEY_FILE", str(missing))

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert f"SECRET_KEY_FILE={missing} cannot be read" in str(raised.value)


def test_placeholder_in_a_password_file_is_refused(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = tmp_path / "db_password"
    password.write_text("change-me-db-password")
    monkeypatch.setenv("DATABASE_URL", "postgresql://svc@db:5432/svc")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(password))

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert "DATABASE_URL password is empty or a placeholder" in str(raised.value)


def test_the_shipped_config_file_shows_every_setting() -> None:
    # The models' defaults are the only defaults; the shipped file shows each of them, so
    # that deleting a line from it is a visible change, not a silent one. Settings without a
    # default (llm.base_url) may be set or left out; unknown keys fail validation.
    shipped = read_config_file(PROJECT_ROOT / DEFAULT_CONFIG_FILE)
    sections = {
        name: field.annotation
        for name, field in AppConfig.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }

    assert set(shipped) == set(sections)
    for section, model in sections.items():
        shown = {name for name, field in model.model_fields.items() if field.default is not None}
        assert shown <= set(shipped[section]), section
    AppConfig.model_validate(shipped)
