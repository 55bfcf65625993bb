"""The rootless engine harness puts the machine back as it found it."""

import pwd
import stat

from tests.harness.rootless import TUN, USER, rootless_engine, security_options


def _user_exists() -> bool:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return False
    return True


def test_the_harness_undoes_what_it_changed_and_stops_only_its_engine() -> None:
    tun_mode = stat.S_IMODE(TUN.stat().st_mode)
    user_existed = _user_exists()
    rootful = security_options(None)

    with rootless_engine() as engine:
        inside = security_options(engine.host)
        tun_mode_inside = stat.S_IMODE(TUN.stat().st_mode)
        work = engine.work
    after = security_options(engine.host)

    assert "name=rootless" in inside
    assert tun_mode_inside & 0o006 == 0o006  # usable by the test user while the engine ran
    assert stat.S_IMODE(TUN.stat().st_mode) == tun_mode
    assert _user_exists() == user_existed
    assert not work.exists()
    assert after.startswith("no answer")
    # The rootful engine the run started is untouched.
    assert "name=rootless" not in rootful
    assert security_options(None) == rootful
