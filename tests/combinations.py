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
            "deploy_targets": "compose+swarm+helm",
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
            "deploy_targets": "compose+swarm",
            "license": "Proprietary",
            "max_upload_mb": "1024",
            "rate_limit_per_minute": "100000",
            "version": "2.0.0.dev3",
            "llm_provider": "anthropic",
        },
        id="pg18-no-ci-proprietary-limits-max-anthropic",
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
            "deploy_targets": "compose+helm",
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
            "deploy_targets": "compose+swarm+helm",
            "llm_provider": "gemini",
        },
        id="py312-pg18-valkey-unicode-author-gemini",
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


def answers_of(combination: ParameterSet) -> dict[str, Any]:
    """The answers of one pytest.param above (its first value)."""
    return cast(dict[str, Any], combination.values[0])


def refused(name: str, value: str, ident: str, reason: str = "") -> ParameterSet:
    """One answer the pre-generation hook refuses, and the start of the line that says why."""
    return pytest.param({name: value}, f"'{name}' has value {value!r}{reason}", id=ident)


# (answers, fragment expected in the one-line error). A project_slug is given where the default
# slug, derived from project_name, would not name a fresh directory.
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
    refused("project_name", "Two\nLines", "name-newline"),
    pytest.param(
        {"project_name": "A" * 81, "project_slug": "long_name"},
        "longer than 80 characters",
        id="name-too-long",
    ),
    refused("project_slug", "MyBot", "slug-uppercase"),
    refused("project_slug", "class", "slug-keyword", " (a Python keyword)"),
    refused("project_slug", "match", "slug-soft-keyword", " (a Python keyword)"),
    refused("project_slug", "typing", "slug-stdlib", " (a standard-library module)"),
    refused("project_slug", "redis", "slug-dependency-redis", " (the import name"),
    refused("project_slug", "fastapi", "slug-dependency-fastapi", " (the import name"),
    refused("project_slug", "test", "slug-test"),
    refused("project_slug", "app", "slug-own-package", " (the import name"),
    refused("project_slug", "1bot", "slug-leading-digit"),
    refused("project_slug", "my-bot", "slug-hyphen"),
    refused("project_slug", "bot_", "slug-trailing-underscore"),
    pytest.param({"project_slug": "a" * 51}, "longer than 50 characters", id="slug-too-long"),
    refused("description", "One\nTwo", "description-newline"),
    pytest.param(
        {"description": "x" * 201}, "longer than 200 characters", id="description-too-long"
    ),
    refused("author_name", "", "author-empty"),
    refused("author_email", "not-an-email", "email-no-at"),
    refused("author_email", "me@localhost", "email-no-domain-dot"),
    refused("version", "v1.0", "version-prefix"),
    refused("version", "1.0-beta", "version-not-pep440"),
    refused("version", "01.0", "version-leading-zero"),
    refused("python_version", "3.11", "python-311"),
    refused("postgres_version", "15", "postgres-15"),
    refused("redis_flavor", "keydb", "redis-keydb"),
    refused("api_port", "80", "port-80"),
    refused("api_port", "70000", "port-70000"),
    refused("api_port", "abc", "port-abc"),
    refused("api_port", "8000 ", "port-trailing-space"),
    refused("llm_provider", "mistral", "provider-mistral"),
    refused("llm_model", "gpt 4", "model-space"),
    refused("llm_model", "-model", "model-leading-dash"),
    refused("max_upload_mb", "0", "upload-0"),
    refused("max_upload_mb", "1025", "upload-1025"),
    refused("rate_limit_per_minute", "0", "rate-0"),
    refused("rate_limit_per_minute", "100001", "rate-100001"),
    refused("ci", "jenkins", "ci-jenkins"),
    refused("deploy_targets", "helm", "deploy-without-compose"),
    refused("deploy_targets", "all", "deploy-all-by-name"),
    refused("deploy_targets", "compose+helm+swarm", "deploy-out-of-order"),
    refused("license", "GPL", "license-gpl"),
]
