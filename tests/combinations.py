"""Named answer sets: the supported combinations and the tiers that use each, and answers the
hook refuses.

Together the supported combinations use every value of every option at least once. The render
and quality tiers take every one of them; boot and compose take those their machines can run.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from _pytest.mark.structures import ParameterSet

SUPPORTED_COMBINATIONS = [
    pytest.param({}, id="default"),
    pytest.param(
        {
            "project_name": "Acme Support-Bot",
            "description": "Answers support tickets for Acme.",
            "author_name": "Ada Lovelace",
            "author_email": "ada.lovelace+bot@acme-corp.example.org",
            "version": "1.2.0rc1",
            "python_version": "3.12",
            "postgres_version": "16",
            "redis_flavor": "valkey",
            "api_port": "8080",
            "llm_provider": "openai",
            "llm_model": "gpt-4.1-mini",
            "ci": "gitlab",
            "license": "Apache-2.0",
        },
        id="py312-pg16-valkey-openai-gitlab-apache",
    ),
    pytest.param(
        {
            "project_name": "Helpdesk",
            "project_slug": "helpdesk_agent",
            "postgres_version": "18",
            "ci": "none",
            "license": "Proprietary",
            "max_upload_mb": "1024",
            "rate_limit_per_minute": "100000",
            "version": "2.0.0.dev3",
        },
        id="pg18-no-ci-proprietary-limits-max",
    ),
    pytest.param(
        {
            "project_name": "Local LLM Agent",
            "llm_provider": "openai",
            "llm_model": "meta-llama/Llama-3.1-8B-Instruct:free",
            "api_port": "65535",
            "max_upload_mb": "1",
            "rate_limit_per_minute": "1",
            "description": "",
        },
        id="openai-local-model-limits-min",
    ),
    pytest.param(
        {
            "project_name": "Valkey Service",
            "python_version": "3.12",
            "postgres_version": "18",
            "redis_flavor": "valkey",
            "api_port": "1024",
            "version": "0.0.1.post2",
            "author_name": "José Müller",
        },
        id="py312-pg18-valkey-unicode-author",
    ),
    pytest.param(
        {
            "project_name": "Research Assistant",
            "llm_provider": "openai",
            "llm_model": "qwen2.5:7b",
            "ci": "github",
            "license": "Apache-2.0",
            "api_port": "9000",
        },
        id="openai-github-apache",
    ),
]

# Beyond render and quality: the tiers that run each combination. Compose needs stand-in
# images, which Debian can provide for Python 3.13, PostgreSQL 17, Redis and Valkey 8 only.
EXTRA_TIERS: dict[str, frozenset[str]] = {
    "default": frozenset({"boot", "compose"}),
    "py312-pg16-valkey-openai-gitlab-apache": frozenset({"boot"}),
    "valkey-two-word-name": frozenset({"compose"}),
}

# Combinations for one tier only (not needed by render or quality, whose others cover them).
TIER_ONLY_COMBINATIONS = [
    # The valkey stack next to the default one: another image, CLI and compose project name.
    pytest.param(
        {"project_name": "Agent Stack-Two", "redis_flavor": "valkey"}, id="valkey-two-word-name"
    ),
]


def for_tier(tier: str) -> list[ParameterSet]:
    """The combinations the tier runs, in the order above (the default first)."""
    if tier in {"render", "quality"}:
        return list(SUPPORTED_COMBINATIONS)
    return [
        combination
        for combination in [*SUPPORTED_COMBINATIONS, *TIER_ONLY_COMBINATIONS]
        if tier in EXTRA_TIERS.get(str(combination.id), frozenset())
    ]


# (answers, fragment expected in the one-line error). A project_slug is given where the default
# slug, derived from project_name, would not name a fresh directory.
def answers_of(combination: ParameterSet) -> dict[str, Any]:
    """The answers of one pytest.param above (its first value)."""
    return cast(dict[str, Any], combination.values[0])


BAD_ANSWERS = [
    pytest.param(
        {"project_name": "", "project_slug": "empty_name"},
        "'project_name' has value ''",
        id="name-empty",
    ),
    pytest.param(
        {"project_name": "   ", "project_slug": "blank_name"},
        "'project_name' has value '   '",
        id="name-blank",
    ),
    pytest.param({"project_name": 'Say "hi"'}, "option 'project_name'", id="name-double-quote"),
    pytest.param({"description": "C:\\agents"}, "option 'description'", id="description-backslash"),
    pytest.param(
        # The slug is what cookiecutter derives from that name (python-slugify transliterates).
        {"project_slug": "zhi_neng_ti", "project_name": "智能体"},
        "'project_slug' has value 'zhi_neng_ti' (derived from '智能体', which has no Latin letters",
        id="name-without-latin-letters",
    ),
    pytest.param(
        {"project_name": "Two\nLines"}, "'project_name' has value 'Two\\nLines'", id="name-newline"
    ),
    pytest.param(
        {"project_name": "A" * 81, "project_slug": "long_name"},
        "longer than 80 characters",
        id="name-too-long",
    ),
    pytest.param(
        {"project_slug": "MyBot"}, "'project_slug' has value 'MyBot'", id="slug-uppercase"
    ),
    pytest.param(
        {"project_slug": "class"},
        "'project_slug' has value 'class' (a Python keyword)",
        id="slug-keyword",
    ),
    pytest.param(
        {"project_slug": "match"},
        "'project_slug' has value 'match' (a Python keyword)",
        id="slug-soft-keyword",
    ),
    pytest.param(
        {"project_slug": "typing"},
        "'project_slug' has value 'typing' (a standard-library module)",
        id="slug-stdlib",
    ),
    pytest.param(
        {"project_slug": "redis"},
        "'project_slug' has value 'redis' (the import name",
        id="slug-dependency-redis",
    ),
    pytest.param(
        {"project_slug": "fastapi"},
        "'project_slug' has value 'fastapi' (the import name",
        id="slug-dependency-fastapi",
    ),
    pytest.param({"project_slug": "test"}, "'project_slug' has value 'test'", id="slug-test"),
    pytest.param(
        {"project_slug": "app"},
        "'project_slug' has value 'app' (the import name",
        id="slug-own-package",
    ),
    pytest.param(
        {"project_slug": "1bot"}, "'project_slug' has value '1bot'", id="slug-leading-digit"
    ),
    pytest.param({"project_slug": "my-bot"}, "'project_slug' has value 'my-bot'", id="slug-hyphen"),
    pytest.param(
        {"project_slug": "bot_"}, "'project_slug' has value 'bot_'", id="slug-trailing-underscore"
    ),
    pytest.param({"project_slug": "a" * 51}, "longer than 50 characters", id="slug-too-long"),
    pytest.param(
        {"description": "One\nTwo"}, "'description' has value 'One\\nTwo'", id="description-newline"
    ),
    pytest.param(
        {"description": "x" * 201}, "longer than 200 characters", id="description-too-long"
    ),
    pytest.param({"author_name": ""}, "'author_name' has value ''", id="author-empty"),
    pytest.param(
        {"author_email": "not-an-email"},
        "'author_email' has value 'not-an-email'",
        id="email-no-at",
    ),
    pytest.param(
        {"author_email": "me@localhost"},
        "'author_email' has value 'me@localhost'",
        id="email-no-domain-dot",
    ),
    pytest.param({"version": "v1.0"}, "'version' has value 'v1.0'", id="version-prefix"),
    pytest.param(
        {"version": "1.0-beta"}, "'version' has value '1.0-beta'", id="version-not-pep440"
    ),
    pytest.param({"version": "01.0"}, "'version' has value '01.0'", id="version-leading-zero"),
    pytest.param({"python_version": "3.11"}, "'python_version' has value '3.11'", id="python-311"),
    pytest.param({"postgres_version": "15"}, "'postgres_version' has value '15'", id="postgres-15"),
    pytest.param({"redis_flavor": "keydb"}, "'redis_flavor' has value 'keydb'", id="redis-keydb"),
    pytest.param({"api_port": "80"}, "'api_port' has value '80'", id="port-80"),
    pytest.param({"api_port": "70000"}, "'api_port' has value '70000'", id="port-70000"),
    pytest.param({"api_port": "abc"}, "'api_port' has value 'abc'", id="port-abc"),
    pytest.param({"api_port": "8000 "}, "'api_port' has value '8000 '", id="port-trailing-space"),
    pytest.param(
        {"llm_provider": "anthropic"},
        "'llm_provider' has value 'anthropic'",
        id="provider-anthropic",
    ),
    pytest.param({"llm_model": "gpt 4"}, "'llm_model' has value 'gpt 4'", id="model-space"),
    pytest.param(
        {"llm_model": "-model"}, "'llm_model' has value '-model'", id="model-leading-dash"
    ),
    pytest.param({"max_upload_mb": "0"}, "'max_upload_mb' has value '0'", id="upload-0"),
    pytest.param({"max_upload_mb": "1025"}, "'max_upload_mb' has value '1025'", id="upload-1025"),
    pytest.param(
        {"rate_limit_per_minute": "0"}, "'rate_limit_per_minute' has value '0'", id="rate-0"
    ),
    pytest.param(
        {"rate_limit_per_minute": "100001"},
        "'rate_limit_per_minute' has value '100001'",
        id="rate-100001",
    ),
    pytest.param({"ci": "jenkins"}, "'ci' has value 'jenkins'", id="ci-jenkins"),
    pytest.param({"license": "GPL"}, "'license' has value 'GPL'", id="license-gpl"),
]
