"""Reject unsafe or unsupported answers before cookiecutter writes any file.

Runs in cookiecutter's own interpreter, so it uses the standard library and what cookiecutter
itself depends on. The file is valid
Python as stored: the one Jinja expression sits inside a raw string (json.dumps escapes quotes, so
no answer can close it) and the tests import this module without rendering it.
"""

from __future__ import annotations

import json
import keyword
import re
import string
import sys
import unicodedata
from collections.abc import Callable, Mapping
from typing import NamedTuple

ANSWERS_JSON = r"""{{ cookiecutter | jsonify }}"""

# One table for every multiple-choice option: adding a value is one edit here (and one in
# cookiecutter.json). Choices are checked because a replay file or the API can bypass the prompt.
CHOICES: dict[str, tuple[str, ...]] = {
    "python_version": ("3.13", "3.12"),
    "postgres_version": ("17", "16", "18"),
    "redis_flavor": ("redis", "valkey"),
    "llm_provider": ("echo", "openai", "anthropic", "gemini"),
    "ci": ("github", "gitlab", "none"),
    "deploy_targets": ("compose", "compose+swarm", "compose+helm", "compose+swarm+helm"),
    "license": ("MIT", "Apache-2.0", "Proprietary"),
}

INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "api_port": (1024, 65535),
    "max_upload_mb": (1, 1024),
    "rate_limit_per_minute": (1, 100_000),
}

# Free text lands in TOML strings ("..."), YAML comments, Markdown and the LICENSE. Only these
# cannot sit there as typed: a double quote or backslash would end or escape a TOML string,
# and braces would be read as template syntax when answers come from a file (--no-input).
FORBIDDEN_CHARACTERS = frozenset('"\\{}')
FORBIDDEN_TEXT = "double quotes, backslashes, braces or control characters"

# Underscores only between words, so "slug".replace("_", "-") is a valid distribution name.
SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
SLUG_MAX_LENGTH = 50
SOFT_KEYWORDS = frozenset(keyword.softkwlist) | {"type"}  # "type" is soft only from 3.12
# Import names of the generated project's dependencies and of its own top-level packages.
RESERVED_SLUGS = frozenset(
    {
        "fastapi", "starlette", "pydantic", "pydantic_settings", "pydantic_core", "sqlalchemy",
        "alembic", "asyncpg", "redis", "openai", "httpx", "httpcore", "uvicorn", "yaml",
        "multipart", "python_multipart", "anyio", "pytest", "mypy", "ruff", "uv",
        "pythonjsonlogger", "app", "tests", "test", "migrations", "config", "scripts", "site",
        "setuptools", "pip",
    }
)  # fmt: skip

EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
# PEP 440 public versions in normalised form (no leading zeros), so uv.lock spells it the same.
NUMBER = r"(0|[1-9]\d*)"
VERSION_PATTERN = re.compile(
    rf"^{NUMBER}(\.{NUMBER})*((a|b|rc){NUMBER})?(\.post{NUMBER})?(\.dev{NUMBER})?$"
)
MODEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")

Check = Callable[[str], str | None]


class Rule(NamedTuple):
    """What an option accepts: a human description and a check returning why a value fails."""

    allowed: str
    check: Check


def text_problem(value: str, *, max_length: int, required: bool) -> str | None:
    """Return why a free-text answer is unsafe, or None when it is fine."""
    if required and not value.strip():
        return "empty"
    if len(value) > max_length:
        return f"longer than {max_length} characters"
    if not value.isprintable():
        return "contains a newline or control character"
    forbidden = "".join(sorted(set(value) & FORBIDDEN_CHARACTERS))
    if forbidden:
        return f"contains {forbidden!r}"
    return None


def has_latin_letter(text: str) -> bool:
    """Tell whether any character is a Latin letter, accents aside ("É" counts, "智" does not)."""
    return any(unicodedata.normalize("NFKD", ch)[0] in string.ascii_letters for ch in text)


def derived_slug_problem(answers: Mapping[str, object]) -> str | None:
    """Refuse a slug transliterated from a name without Latin letters: ask for one instead."""
    name, slug = str(answers.get("project_name", "")), str(answers.get("project_slug", ""))
    if has_latin_letter(name) or not name.strip():
        return None
    # cookiecutter depends on python-slugify, so its interpreter (which runs this) has it.
    from slugify import slugify

    if slug != slugify(name, separator="_"):
        return None  # chosen by the user, not derived
    return f"derived from {name!r}, which has no Latin letters: choose a slug"


def slug_problem(value: str) -> str | None:
    """Return why a project slug cannot be used as a package, directory and project name."""
    if not SLUG_PATTERN.fullmatch(value):
        return "not a lowercase identifier"
    if len(value) > SLUG_MAX_LENGTH:
        return f"longer than {SLUG_MAX_LENGTH} characters"
    if keyword.iskeyword(value) or value in SOFT_KEYWORDS:
        return "a Python keyword"
    if value in sys.stdlib_module_names:
        return "a standard-library module"
    if value in RESERVED_SLUGS:
        return "the import name of a dependency or of the project's own packages"
    return None


def pattern_problem(pattern: re.Pattern[str]) -> Check:
    """Build a check that a value matches the pattern."""
    # fullmatch: with match, "$" would let a trailing newline through.
    return lambda value: None if pattern.fullmatch(value) else "does not match the pattern"


def choice_problem(choices: tuple[str, ...]) -> Check:
    """Build a check that a value is one of the choices."""
    return lambda value: None if value in choices else "not a supported choice"


def integer_problem(low: int, high: int) -> Check:
    """Build a check that a value is a plain decimal integer in [low, high]."""

    def check(value: str) -> str | None:
        # Leading zeros are refused so the rendered files show the number as given.
        if not (value.isascii() and value.isdigit()) or value != str(int(value)):
            return "not a plain integer"
        return None if low <= int(value) <= high else "out of range"

    return check


def text_rule(max_length: int, *, required: bool) -> Rule:
    """Rule for a free-text answer that ends up inside YAML, TOML, Markdown and .env files."""
    kind = "non-empty text" if required else "text"
    return Rule(
        f"{kind} on one line, at most {max_length} characters, without {FORBIDDEN_TEXT}",
        lambda value: text_problem(value, max_length=max_length, required=required),
    )


def pattern_rule(description: str, pattern: re.Pattern[str]) -> Rule:
    """Rule for an answer that must match a regular expression."""
    return Rule(f"{description} matching {pattern.pattern}", pattern_problem(pattern))


def choice_rule(option: str) -> Rule:
    """Rule for a multiple-choice option, from the CHOICES table."""
    values = CHOICES[option]
    return Rule(f"one of {', '.join(map(repr, values))}", choice_problem(values))


def integer_rule(option: str) -> Rule:
    """Rule for an integer option, from the INTEGER_RANGES table."""
    low, high = INTEGER_RANGES[option]
    return Rule(f"an integer from {low} to {high}", integer_problem(low, high))


# In cookiecutter.json order, so the first error reported is the first question answered wrong.
RULES: dict[str, Rule] = {
    "project_name": text_rule(80, required=True),
    "project_slug": Rule(
        f"a lowercase identifier matching {SLUG_PATTERN.pattern}, at most {SLUG_MAX_LENGTH} "
        "characters, that is not a Python keyword, a standard-library module or the import name "
        "of a dependency",
        slug_problem,
    ),
    "description": text_rule(200, required=False),
    "author_name": text_rule(80, required=True),
    "author_email": pattern_rule("an email address", EMAIL_PATTERN),
    "version": pattern_rule("a normalised PEP 440 public version", VERSION_PATTERN),
    "python_version": choice_rule("python_version"),
    "postgres_version": choice_rule("postgres_version"),
    "redis_flavor": choice_rule("redis_flavor"),
    "api_port": integer_rule("api_port"),
    "llm_provider": choice_rule("llm_provider"),
    "llm_model": pattern_rule("a model name", MODEL_PATTERN),
    "max_upload_mb": integer_rule("max_upload_mb"),
    "rate_limit_per_minute": integer_rule("rate_limit_per_minute"),
    "ci": choice_rule("ci"),
    "deploy_targets": choice_rule("deploy_targets"),
    "license": choice_rule("license"),
}


def error_line(option: str, answers: Mapping[str, object]) -> str | None:
    """Return the error line for one option, or None when its answer is accepted."""
    rule = RULES[option]
    if option not in answers:
        return f"option {option!r} is missing; allowed: {rule.allowed}"
    # str(): the prompt gives strings, but the Python API may pass an int such as 8000.
    value = str(answers[option])
    problem = rule.check(value)
    if problem is None and option == "project_slug":
        problem = derived_slug_problem(answers)
    if problem is None:
        return None
    return f"option {option!r} has value {value!r} ({problem}); allowed: {rule.allowed}"


def validate(answers: Mapping[str, object]) -> list[str]:
    """Return one error line per rejected answer, in question order."""
    return [line for option in RULES if (line := error_line(option, answers)) is not None]


def main() -> None:
    """Validate the rendered answers; print the first problem and exit 1 if there is one."""
    errors = validate(json.loads(ANSWERS_JSON))
    if errors:
        print(f"ERROR: {errors[0]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
