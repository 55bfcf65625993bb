"""The rootless engine harness puts the machine back as it found it."""

import os
import pwd
import stat
import subprocess

from tests.harness.rootless import TUN, USER, rootless_engine


def _user_exists() -> bool:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return False
    return True


def _engine_answers(env: dict[str, str]) -> str:
    result = subprocess.run(
        ["docker", "info", "--format", "{{json .SecurityOptions}}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout if result.returncode == 0 else f"no answer: {result.stderr}"


def test_the_harness_undoes_what_it_changed_and_stops_only_its_engine() -> None:
    tun_mode = stat.S_IMODE(TUN.stat().st_mode)
    user_existed = _user_exists()
    rootful = _engine_answers(dict(os.environ))

    with rootless_engine() as engine:
        inside = _engine_answers({**os.environ, "DOCKER_HOST": engine.host})
        tun_mode_inside = stat.S_IMODE(TUN.stat().st_mode)
        work = engine.work
    after = _engine_answers({**os.environ, "DOCKER_HOST": engine.host})

    assert "name=rootless" in inside
    assert tun_mode_inside & 0o006 == 0o006  # usable by the test user while the engine ran
    assert stat.S_IMODE(TUN.stat().st_mode) == tun_mode
    assert _user_exists() == user_existed
    assert not work.exists()
    assert after.startswith("no answer")
    # The rootful engine the run started is untouched.
    assert "name=rootless" not in rootful
    assert _engine_answers(dict(os.environ)) == rootful
