"""Safe when copied as is: the CIS Docker Benchmark's container checks, on the booted stack.

Sections 4 (container images) and 5 (container runtime) of the CIS Docker Benchmark v1.6.0, the
checks docker-bench-security runs on containers, done here on `docker inspect` of every running
container of the default stack (api, worker, db, redis); each test id carries the benchmark's
number. (docker-bench-security's script puts a swarm check at 5.1, so its numbers in section 5
are one higher.) Then what the benchmark cannot see: that each server really runs as its own
user and writes only where it must, that volumes prepared by the root entrypoints of earlier
releases still start, and log rotation.

Not checked, because no setting of the compose file decides them:
- host and client: 4.5 content trust (DOCKER_CONTENT_TRUST of whoever pulls), 5.1 AppArmor and
  5.2 SELinux (the host's security module; these machines have neither);
- how images are built and kept: 4.2-4.4 and 4.7-4.11 (hadolint in the quality tier reads the
  Dockerfile; test_secrets.py looks for secrets in the image);
- how the stack is operated: 5.18 ulimits (a manual check), 5.22 and 5.23 (how `docker exec`
  is used), 5.27 (pulling updated images).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness.stack import BASE_FILE, Stack

# The services that run and stay up; migrate exits once it has migrated.
RUNNING = {"api", "worker", "db", "redis"}
# Where the api listens inside its container: the one port the stack publishes.
API_PORT = "8000/tcp"
# uid and gid of each server: the api image's own, and those of the official alpine images.
SERVER_IDS = [("api", 10001, 10001), ("db", 70, 70), ("redis", 999, 1000)]
# docker-bench-security's list of host directories no container should mount, and the root.
SENSITIVE_HOST_DIRS = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr")
UNLIMITED = "unlimited"


@dataclass(frozen=True)
class Running:
    """One running container: its service, `docker inspect` and every process in it."""

    service: str
    inspected: dict[str, Any]
    # Name and uids (real, effective, saved, filesystem) of each process.
    processes: list[tuple[str, tuple[int, ...]]]

    @property
    def host(self) -> dict[str, Any]:
        host: dict[str, Any] = self.inspected["HostConfig"]
        return host

    @property
    def mounts(self) -> list[dict[str, Any]]:
        return list(self.inspected["Mounts"])

    @property
    def bindings(self) -> list[tuple[str, str, int]]:
        """Published ports: (container port, host address, host port)."""
        ports = self.inspected["NetworkSettings"]["Ports"] or {}
        return [
            (port, binding["HostIp"], int(binding["HostPort"]))
            for port, bindings in ports.items()
            for binding in bindings or []
        ]


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    """This module only reads the stack (or puts back what it changes): it shares one."""
    return shared_stack


def _ids(status: str, field: str) -> tuple[int, ...]:
    """The ids of a /proc/<pid>/status line such as 'Uid:\t70\t70\t70\t70'."""
    line = next(line for line in status.splitlines() if line.startswith(f"{field}:"))
    return tuple(int(value) for value in line.split()[1:])


def _processes(stack: Stack, service: str) -> list[tuple[str, tuple[int, ...]]]:
    # A process may end between the glob and the read: cat's complaint about it is no failure.
    text = stack.exec(service, "sh", "-c", "cat /proc/[0-9]*/status 2>/dev/null", check=False)
    records = ["Name:" + record for record in text.stdout.split("Name:")[1:]]
    return [(record.split()[1], _ids(record, "Uid")) for record in records]


@pytest.fixture(scope="module")
def running(stack: Stack) -> list[Running]:
    services = stack.compose("ps", "--services", "--status", "running").stdout.split()
    assert set(services) >= RUNNING, services
    return [Running(s, stack.inspect(s), _processes(stack, s)) for s in sorted(services)]


def _user_is_not_root(c: Running) -> bool:
    configured = c.inspected["Config"]["User"].split(":")[0]
    return configured not in ("", "0", "root") and all(0 not in ids for _, ids in c.processes)


def _has_a_healthcheck(c: Running) -> bool:
    test = (c.inspected["Config"].get("Healthcheck") or {}).get("Test") or ["NONE"]
    return bool(test[0] != "NONE")


def _drops_every_capability(c: Running) -> bool:
    return bool(c.host["CapDrop"] == ["ALL"] and not c.host["CapAdd"])


def _mounts_no_sensitive_host_dir(c: Running) -> bool:
    sources = [m["Source"] for m in c.mounts if m["Type"] == "bind"]
    return not [s for s in sources for d in SENSITIVE_HOST_DIRS if s == d or s.startswith(f"{d}/")]


def _publishes_only_the_api_port(c: Running) -> bool:
    published = [port for port, _, _ in c.bindings]
    return published == ([API_PORT] if c.service == "api" else [])


def _binds_ports_to_one_interface(c: Running) -> bool:
    return all(address not in ("", "0.0.0.0", "::") for _, address, _ in c.bindings)


def _restarts_a_bounded_number_of_times(c: Running) -> bool:
    policy = c.host["RestartPolicy"]
    if policy["Name"] == "on-failure":
        return bool(1 <= policy["MaximumRetryCount"] <= 5)
    return bool(policy["Name"] != "always")


def _keeps_the_default_seccomp_profile(c: Running) -> bool:
    options = c.host["SecurityOpt"] or []
    return not [o for o in options if o.startswith("seccomp") and o.endswith("unconfined")]


def _is_off_the_default_bridge(c: Running) -> bool:
    networks = c.inspected["NetworkSettings"]["Networks"]
    return c.host["NetworkMode"] not in ("default", "bridge") and "bridge" not in networks


def _not(key: str, value: str) -> Callable[[Running], bool]:
    """A check that the HostConfig setting key is not value (a host namespace, mostly)."""
    return lambda c: bool(c.host[key] != value)


CIS_CHECKS = [
    pytest.param(_user_is_not_root, id="4.1-user-is-not-root"),
    pytest.param(_has_a_healthcheck, id="4.6-healthcheck"),
    pytest.param(_drops_every_capability, id="5.3-capabilities-dropped"),
    pytest.param(lambda c: not c.host["Privileged"], id="5.4-not-privileged"),
    pytest.param(_mounts_no_sensitive_host_dir, id="5.5-no-sensitive-host-dir"),
    pytest.param(lambda c: all(n != "sshd" for n, _ in c.processes), id="5.6-no-sshd"),
    pytest.param(lambda c: all(p >= 1024 for *_, p in c.bindings), id="5.7-no-privileged-port"),
    pytest.param(_publishes_only_the_api_port, id="5.8-only-the-api-port"),
    pytest.param(_not("NetworkMode", "host"), id="5.9-not-host-network"),
    pytest.param(lambda c: c.host["Memory"] > 0, id="5.10-memory-limit"),
    pytest.param(lambda c: c.host["NanoCpus"] > 0, id="5.11-cpu-limit"),
    pytest.param(lambda c: c.host["ReadonlyRootfs"] is True, id="5.12-read-only-root"),
    pytest.param(_binds_ports_to_one_interface, id="5.13-ports-on-one-interface"),
    pytest.param(_restarts_a_bounded_number_of_times, id="5.14-restart-policy"),
    pytest.param(_not("PidMode", "host"), id="5.15-not-host-pid"),
    pytest.param(_not("IpcMode", "host"), id="5.16-not-host-ipc"),
    pytest.param(lambda c: not c.host["Devices"], id="5.17-no-host-devices"),
    pytest.param(
        lambda c: all(m.get("Propagation") not in ("shared", "rshared") for m in c.mounts),
        id="5.19-no-shared-mount-propagation",
    ),
    pytest.param(_not("UTSMode", "host"), id="5.20-not-host-uts"),
    pytest.param(_keeps_the_default_seccomp_profile, id="5.21-seccomp-profile"),
    pytest.param(lambda c: not c.host["CgroupParent"], id="5.24-default-cgroup"),
    pytest.param(
        lambda c: "no-new-privileges:true" in (c.host["SecurityOpt"] or []),
        id="5.25-no-new-privileges",
    ),
    pytest.param(
        lambda c: c.inspected["State"]["Health"]["Status"] == "healthy",
        id="5.26-healthy-at-runtime",
    ),
    pytest.param(lambda c: (c.host["PidsLimit"] or 0) > 0, id="5.28-pids-limit"),
    pytest.param(_is_off_the_default_bridge, id="5.29-not-the-default-bridge"),
    pytest.param(_not("UsernsMode", "host"), id="5.30-not-host-userns"),
    pytest.param(
        lambda c: not [m for m in c.mounts if m["Source"].endswith("docker.sock")],
        id="5.31-no-docker-socket",
    ),
]


@pytest.mark.parametrize("check", CIS_CHECKS)
def test_cis_container_check(running: list[Running], check: Callable[[Running], bool]) -> None:
    failing = [c.service for c in running if not check(c)]

    assert failing == []


def test_the_api_is_the_one_published_port_on_loopback(
    stack: Stack, running: list[Running]
) -> None:
    published = [(c.service, *binding) for c in running for binding in c.bindings]

    assert published == [("api", API_PORT, "127.0.0.1", stack.port)]


@pytest.mark.parametrize(("service", "uid", "gid"), SERVER_IDS)
def test_each_server_runs_as_its_own_user_from_the_start(
    stack: Stack, service: str, uid: int, gid: int
) -> None:
    status = stack.exec(service, "cat", "/proc/1/status").stdout
    configured = stack.inspect(service)["Config"]["User"]

    # Started as that user (no entrypoint running as root first), and still it.
    assert configured == f"{uid}:{gid}"
    assert _ids(status, "Uid") == (uid,) * 4
    assert _ids(status, "Gid") == (gid,) * 4
    assert stack.exec(service, "id", "-u").stdout.strip() == str(uid)


@pytest.mark.parametrize(
    ("service", "path", "writable"),
    [
        ("db", "/etc/probe", False),
        ("db", "/usr/local/bin/probe", False),
        ("db", "{postgres_data}/probe", True),
        ("db", "/var/run/postgresql/probe", True),
        ("db", "/tmp/probe", True),
        ("redis", "/etc/probe", False),
        ("redis", "/usr/local/bin/probe", False),
        ("redis", "{redis_data}/probe", True),
        ("redis", "/tmp/probe", True),
    ],
)
def test_database_and_redis_write_only_to_their_volume_and_tmpfs(
    stack: Stack, service: str, path: str, writable: bool
) -> None:
    volumes = {
        m["Name"].removeprefix(f"{stack.name}_"): m["Destination"]
        for m in stack.inspect(service)["Mounts"]
        if m["Type"] == "volume"
    }
    target = path.format(**volumes)

    result = stack.exec(service, "sh", "-c", 'echo x > "$1"', "sh", target, check=False)
    if writable:
        stack.exec(service, "rm", "-f", target)

    assert (result.returncode == 0) is writable, result.stderr
    # Refused by the read-only root itself, not by file permissions.
    assert writable or "Read-only file system" in result.stderr


def test_api_runs_with_init_a_sized_tmp_and_a_grace_period(stack: Stack) -> None:
    inspected = stack.inspect("api")

    assert inspected["HostConfig"]["Init"] is True
    assert "size=16m" in inspected["HostConfig"]["Tmpfs"]["/tmp"]
    assert inspected["Config"]["StopTimeout"] == 30


def test_db_has_shared_memory_a_socket_tmpfs_and_a_grace_period(stack: Stack) -> None:
    inspected = stack.inspect("db")
    owner = stack.exec("db", "stat", "-c", "%u:%g %a", "/var/run/postgresql").stdout.split()

    assert inspected["HostConfig"]["ShmSize"] >= 256 * 1024 * 1024
    assert "size=1m" in inspected["HostConfig"]["Tmpfs"]["/var/run/postgresql"]
    assert owner[0] == "70:70"
    assert inspected["Config"]["StopTimeout"] == 60


@pytest.mark.parametrize(
    ("path", "writable"),
    [
        ("/app/app/injected.py", False),
        ("/app/pyproject.toml", False),
        ("/etc/passwd", False),
        ("/tmp/scratch", True),
        ("/app/logs/probe", True),
        ("/app/uploads/probe", True),
    ],
)
def test_api_can_write_only_to_tmp_logs_and_uploads(
    stack: Stack, path: str, writable: bool
) -> None:
    write = f"open({path!r}, 'a').write('x')"
    result = stack.exec("api", "python", "-c", write, check=False)
    if writable:
        stack.exec("api", "rm", "-f", path)

    assert (result.returncode == 0) is writable, result.stderr


def test_container_logs_rotate(running: list[Running]) -> None:
    logging = {c.service: c.host["LogConfig"] for c in running}

    assert {s: config["Type"] for s, config in logging.items()} == dict.fromkeys(
        logging, "json-file"
    )
    assert [
        s for s, config in logging.items() if set(config["Config"]) != {"max-size", "max-file"}
    ] == []


# db and redis as releases before this one ran them: the image's entrypoint started as root,
# gave the data directory to the server's user and dropped to it, with the capabilities that
# needs. A project updated from one has volumes prepared that way.
ROOT_ENTRYPOINTS = """\
services:
  db:
    user: "0:0"
    read_only: false
    cap_add: [CHOWN, DAC_OVERRIDE, FOWNER, SETGID, SETUID]
  redis:
    user: "0:0"
    read_only: false
    cap_add: [CHOWN, DAC_OVERRIDE, SETGID, SETUID]
"""


def test_volumes_prepared_by_root_entrypoints_start_as_the_servers_users(
    fresh_stack: Stack, tmp_path: Path
) -> None:
    stack = fresh_stack
    before = tmp_path / "compose.root-entrypoints.yaml"
    before.write_text(ROOT_ENTRYPOINTS)
    old_files = (BASE_FILE, str(before))
    stack.up("db", "redis", files=old_files)
    old_uid = stack.exec("db", "id", "-u").stdout.strip()
    stack.psql("CREATE TABLE kept AS SELECT 'from the root era' AS note")
    stack.redis_cli("set", "kept-key", "from the root era")
    stack.redis_cli("bgrewriteaof")
    stack.compose("down", files=old_files)

    stack.up()
    note = stack.psql("SELECT note FROM kept")
    value = stack.redis_cli("get", "kept-key")
    with stack.client() as client:
        health = client.get("/health")
    db_uid = _ids(stack.exec("db", "cat", "/proc/1/status").stdout, "Uid")

    assert old_uid == "0"  # `docker compose exec` ran as root then
    assert note == "from the root era"
    assert value == "from the root era"
    assert health.status_code == 200
    assert db_uid == (70,) * 4
