"""The default answers ship exactly the defaults the code has."""

from tests.project import Project

# Prints whether the shipped config.yaml equals the code's defaults, then both, with lists
# sorted (a frozenset dumps in no fixed order) so that a difference reads plainly.
SCRIPT = """
import json
from app.config.loading import DEFAULT_CONFIG_FILE, PROJECT_ROOT, read_config_file
from app.config.sections import AppConfig

def plain(value):
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted(plain(item) for item in value)
    return value

shipped = AppConfig.model_validate(read_config_file(PROJECT_ROOT / DEFAULT_CONFIG_FILE))
print(shipped == AppConfig())
print(json.dumps(plain(shipped.model_dump(mode="json")), sort_keys=True))
print(json.dumps(plain(AppConfig().model_dump(mode="json")), sort_keys=True))
"""


def test_the_default_answers_ship_exactly_the_code_defaults(default_project: Project) -> None:
    # With the default answers, config/config.yaml says what the code would do without it:
    # one default per setting, wherever it is read from.
    result = default_project.uv("run", "--locked", "python", "-c", SCRIPT)

    same, shipped, defaults = result.stdout.splitlines()
    assert shipped == defaults
    assert same == "True"
