"""pre_gen_project checks every answer before a file is written; both hooks render safely."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cookiecutter.utils import create_env_with_context

from tests.combinations import BAD_ANSWERS, SUPPORTED_COMBINATIONS
from tests.render.hooks import (
    COOKIECUTTER_JSON,
    HOOKS,
    first_error,
    pre_gen,
    rendered_answers,
    set_answers,
)

# --- pre_gen_project: the tables agree with cookiecutter.json -----------------------------------


def test_rules_follow_the_questions_in_cookiecutter_json() -> None:
    options = [key for key in json.loads(COOKIECUTTER_JSON.read_text()) if not key.startswith("_")]
    assert list(pre_gen.RULES) == options


def test_choices_table_matches_cookiecutter_json() -> None:
    choices = {
        key: tuple(value)
        for key, value in json.loads(COOKIECUTTER_JSON.read_text()).items()
        if isinstance(value, list) and not key.startswith("_")
    }
    assert choices == pre_gen.CHOICES


# --- pre_gen_project: accepted answers -----------------------------------------------------------


def test_defaults_are_accepted() -> None:
    assert pre_gen.validate(rendered_answers()) == []


@pytest.mark.parametrize("extra_context", SUPPORTED_COMBINATIONS)
def test_supported_combinations_are_accepted(extra_context: dict[str, str]) -> None:
    assert pre_gen.validate(rendered_answers(extra_context)) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("project_name", "Acme Support-Bot"),
        ("project_name", "Café (beta) 2.0: the bot!"),
        ("project_name", "N" * 80),
        ("project_slug", "a"),
        ("project_slug", "bot2_v3"),
        ("project_slug", "b" * 50),
        ("description", ""),
        ("description", "d" * 200),
        ("author_name", "José Müller"),
        ("author_email", "first.last+tag@mail.example.co.uk"),
        ("version", "0"),
        ("version", "10.0.3a1.post2.dev0"),
        ("api_port", "1024"),
        ("api_port", "65535"),
        ("api_port", 8000),
        ("llm_model", "meta-llama/Llama-3.1-8B-Instruct:free"),
        ("llm_model", "m" * 100),
        ("max_upload_mb", "1"),
        ("max_upload_mb", "1024"),
        ("rate_limit_per_minute", "1"),
        ("rate_limit_per_minute", "100000"),
    ],
)
def test_edge_values_are_accepted(option: str, value: object) -> None:
    assert pre_gen.validate({**rendered_answers(), option: value}) == []


@pytest.mark.parametrize(("option", "values"), list(pre_gen.CHOICES.items()))
def test_every_choice_is_accepted(option: str, values: tuple[str, ...]) -> None:
    for value in values:
        assert pre_gen.validate({**rendered_answers(), option: value}) == []


# --- pre_gen_project: rejected answers -----------------------------------------------------------


@pytest.mark.parametrize(("answers", "fragment"), BAD_ANSWERS)
def test_bad_answer_is_the_first_error(answers: dict[str, str], fragment: str) -> None:
    error = first_error(**answers)
    assert fragment in error
    option = next(iter(answers))
    value = answers[option]
    assert error.startswith(f"option {option!r} has value {value!r} (")
    assert f"; allowed: {pre_gen.RULES[option].allowed}" in error
    assert "\n" not in error


@pytest.mark.parametrize("character", sorted('"\\{}'))
@pytest.mark.parametrize("option", ["project_name", "description", "author_name"])
def test_text_rejects_characters_that_break_files(option: str, character: str) -> None:
    error = first_error(**{option: f"A{character}B"})
    assert error.startswith(f"option {option!r} has value {f'A{character}B'!r} (contains ")


@pytest.mark.parametrize("value", ["tab\there", "nul\x00", "bell\x07", "nbsp\u00a0", "cr\r"])
def test_text_rejects_control_characters(value: str) -> None:
    assert "control character" in first_error(project_name=value)


@pytest.mark.parametrize(
    "option", ["project_slug", "author_email", "version", "llm_model", "api_port"]
)
def test_trailing_newline_is_rejected(option: str) -> None:
    value = f"{rendered_answers()[option]}\n"
    assert first_error(**{option: value}).startswith(f"option {option!r} has value {value!r}")


@pytest.mark.parametrize(
    "value", ["08000", "+8000", "8_000", "\uff18\uff10\uff10\uff10", "8000.0", "", "-1"]
)
def test_port_must_be_a_plain_integer(value: str) -> None:
    assert first_error(api_port=value).startswith(f"option 'api_port' has value {value!r}")


@pytest.mark.parametrize("value", ["case", "type", "_", "import", "json", "asyncio", "uv", "pip"])
def test_slug_rejects_keywords_stdlib_and_tools(value: str) -> None:
    assert first_error(project_slug=value).startswith(f"option 'project_slug' has value {value!r}")


def test_missing_option_is_reported() -> None:
    answers = rendered_answers()
    del answers["license"]
    assert pre_gen.validate(answers) == [
        f"option 'license' is missing; allowed: {pre_gen.RULES['license'].allowed}"
    ]


def test_choice_message_lists_the_allowed_values() -> None:
    assert first_error(python_version="3.11") == (
        "option 'python_version' has value '3.11' (not a supported choice); "
        "allowed: one of '3.13', '3.12'"
    )


def test_port_message_names_the_range() -> None:
    assert first_error(api_port="80").endswith("; allowed: an integer from 1024 to 65535")


# --- pre_gen_project: main() ---------------------------------------------------------------------


def test_main_exits_1_with_one_line_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_answers(monkeypatch, pre_gen, api_port="80", ci="jenkins")
    with pytest.raises(SystemExit) as exit_info:
        pre_gen.main()
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("ERROR: option 'api_port' has value '80' (out of range); ")
    assert captured.err.count("\n") == 1


def test_main_is_silent_for_good_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_answers(monkeypatch, pre_gen)
    pre_gen.main()
    assert capsys.readouterr() == ("", "")


# --- both hooks: the only Jinja is the answers line, and no answer can break out of it -----------


@pytest.mark.parametrize("name", ["pre_gen_project", "post_gen_project"])
def test_hook_holds_one_jinja_expression_and_no_tags(name: str) -> None:
    source = (HOOKS / f"{name}.py").read_text()
    assert source.count("{{") == 1
    assert 'ANSWERS_JSON = r"""{{ cookiecutter | jsonify }}"""\n' in source
    assert "{%" not in source


@pytest.mark.parametrize("name", ["pre_gen_project", "post_gen_project"])
def test_rendered_hook_survives_hostile_answers(name: str) -> None:
    hostile = {**rendered_answers(), "project_name": '"""\\"; raise SystemExit(3) #\n\\', "x": ""}
    context = {"cookiecutter": hostile}
    source = (HOOKS / f"{name}.py").read_text()
    rendered = create_env_with_context(context).from_string(source).render(**context)
    namespace: dict[str, Any] = {"__name__": "rendered_hook"}
    exec(compile(rendered, name, "exec"), namespace)
    assert json.loads(namespace["ANSWERS_JSON"]) == hostile
