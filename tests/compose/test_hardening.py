"""Safe when copied as is: least privilege, limits and log rotation, checked on the containers."""

import pytest

from tests.harness.stack import Stack

SERVICES = ("api", "db", "redis")


@pytest.mark.parametrize("service", SERVICES)
def test_no_capabilities_beyond_need_and_no_privilege_escalation(
    stack: Stack, service: str
) -> None:
    host = stack.inspect(service)["HostConfig"]

    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert not host["Privileged"]
    if service == "api":
        assert not host["CapAdd"]


@pytest.mark.parametrize("service", SERVICES)
def test_memory_pids_and_log_rotation_are_bounded(stack: Stack, service: str) -> None:
    host = stack.inspect(service)["HostConfig"]

    assert host["Memory"] > 0
    assert (host["PidsLimit"] or 0) > 0
    assert host["LogConfig"]["Type"] == "json-file"
    assert set(host["LogConfig"]["Config"]) == {"max-size", "max-file"}


def test_api_runs_as_a_fixed_non_root_uid_on_a_read_only_root(stack: Stack) -> None:
    inspected = stack.inspect("api")
    host = inspected["HostConfig"]

    uid = stack.exec("api", "id", "-u").stdout.strip()

    assert uid == "10001"
    assert host["ReadonlyRootfs"] is True
    assert host["Init"] is True
    assert host["NanoCpus"] > 0
    assert "size=16m" in host["Tmpfs"]["/tmp"]
    assert inspected["Config"]["StopTimeout"] == 30


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


def test_database_and_redis_keep_their_data_owners_non_root(stack: Stack) -> None:
    postgres_user = stack.exec("db", "sh", "-c", "ps -o user= -p 1 || stat -c %U /proc/1").stdout
    redis_uid = stack.exec("redis", "sh", "-c", "stat -c %u /proc/1").stdout.strip()

    assert "root" not in postgres_user
    assert redis_uid != "0"
    assert stack.inspect("db")["HostConfig"]["ShmSize"] >= 256 * 1024 * 1024
