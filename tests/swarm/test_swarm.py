"""The generated deploy/stack.yaml on a real single-node swarm: replicas, private services,
swarm configs and secrets, self-healing, a rolling update without failed requests, and data
that outlives the stack. Tests run in file order on one deployed stack; the later ones change
it (a killed task, an update, a removal and a new deploy)."""

import json
import time

import pytest

from tests.harness import docker as lab
from tests.harness.swarm import SwarmStack

# Sends GET URL in a loop, each on a new connection (so every request resolves the service
# name again, as a client of a dnsrr service does), until SIGTERM; then prints its tally.
LOOP_CLIENT = """
import json, signal, sys, time, urllib.request
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
ok, failures = 0, []
while not stop:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
            ok += 1
    except Exception as exc:
        failures.append(repr(exc))
    time.sleep(0.02)
print(json.dumps({"ok": ok, "failures": failures}), flush=True)
"""

# Speaks first to HOST:PORT as a client of PostgreSQL (an SSLRequest, answered N or S) or of
# Redis (PING, answered -NOAUTH or +PONG); prints "answered" or what happened instead. A bare
# connect proves nothing here: this machine's outer network accepts TCP to any address.
PROBE = """
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
hello, replies = {
    5432: (struct.pack("!ii", 8, 80877103), (b"N", b"S")),
    6379: (b"PING\\r\\n", (b"-NOAUTH", b"+PONG")),
}[port]
try:
    with socket.create_connection((host, port), timeout=3) as sock:
        sock.sendall(hello)
        sock.settimeout(3)
        reply = sock.recv(64)
    print("answered" if reply.startswith(replies) else f"other reply {reply!r}")
except OSError as exc:
    print(type(exc).__name__, exc)
"""


def test_every_replica_is_healthy_and_answers_on_its_own(stack: SwarmStack) -> None:
    urls = stack.replica_urls()

    assert len(urls) == 2
    for url in urls:
        with stack.client(url) as client:
            health = client.get("/health")
            assert health.status_code == 200, health.text
            assert health.json()["database"] == "connected"
            assert health.json()["redis"] == "connected"
    assert len(stack.healthy("worker")) == 1
    assert stack.migrated()
    # Started together with db and redis, they waited for them instead of failing.
    assert stack.ended_tasks("api") == []
    assert stack.ended_tasks("worker") == []


def test_config_is_read_only_and_secrets_are_the_api_users_alone(stack: SwarmStack) -> None:
    container = stack.healthy("api")[0]

    listing = lab.docker(
        "exec", container, "stat", "-c", "%a %u %g %n", "/app/config.yaml", "/run/secrets/api_keys"
    ).stdout.splitlines()
    write = lab.docker("exec", container, "sh", "-c", "echo x >> /app/config.yaml", check=False)
    config = lab.docker("exec", container, "cat", "/app/config.yaml").stdout

    assert listing == ["440 10001 10001 /app/config.yaml", "400 10001 10001 /run/secrets/api_keys"]
    assert write.returncode != 0
    assert "Read-only file system" in write.stderr
    assert config == stack.project.text("config/config.yaml")


@pytest.mark.parametrize(("service", "port"), [("db", 5432), ("redis", 6379)])
def test_db_and_redis_are_reachable_only_inside_the_stack_network(
    stack: SwarmStack, service: str, port: int
) -> None:
    address = stack.inspect(stack.containers(service)[0])["NetworkSettings"]["Networks"][
        stack.network()
    ]["IPAddress"]

    inside = stack.run_in_network("-c", PROBE, service, str(port)).stdout.strip()
    by_name = stack.run_in_network("-c", PROBE, service, str(port), network="bridge")
    by_address = stack.run_in_network("-c", PROBE, address, str(port), network="bridge")

    assert inside == "answered"
    assert by_name.stdout.startswith("gaierror"), by_name.stdout
    assert not by_address.stdout.startswith("answered"), by_address.stdout
    assert stack.inspect_service(service)["Endpoint"].get("Ports") is None


def test_db_and_redis_run_as_their_own_users_on_read_only_roots(stack: SwarmStack) -> None:
    for service, uid in (("db", "70"), ("redis", "999")):
        container = stack.containers(service)[0]
        assert lab.docker("exec", container, "id", "-u").stdout.strip() == uid
        write = lab.docker("exec", container, "touch", "/probe", check=False)
        assert "Read-only file system" in write.stderr


def test_backup_scripts_work_against_the_stack(stack: SwarmStack) -> None:
    # Each prints its file's size and path, like du -h.
    dump = stack.script("backup-db").stdout.split()[-1]
    verified = stack.script("verify-backup", dump)
    archive = stack.script("backup-volume", "uploads").stdout.split()[-1]
    restore = stack.script("restore-db", "--yes", dump, check=False)

    assert dump.endswith(".dump")
    assert f"/backups/{stack.name}-db-" in dump
    assert verified.returncode == 0, verified.stderr
    assert archive.endswith(".tar.gz")
    assert f"/backups/{stack.name}-uploads-" in archive
    assert restore.returncode == 1
    assert "works with compose only" in restore.stderr


def test_a_killed_api_task_is_replaced(stack: SwarmStack) -> None:
    killed = stack.healthy("api")[0]

    lab.docker("kill", killed)
    stack.wait_converged()

    assert killed not in stack.healthy("api")
    assert len(stack.replica_urls()) == 2


def test_a_rolling_update_fails_no_request(stack: SwarmStack) -> None:
    rebuilt = f"{stack.images.api}-rebuilt"
    base = lab.python_image(stack.project.python_version)
    assert base is not None
    lab.build_image(
        stack.project.path,
        rebuilt,
        build_args={"PYTHON_IMAGE": base},
        target="runtime",
        labels={"revision": "2"},
    )
    client = stack.run_in_network(
        "-c", LOOP_CLIENT, "http://api:8000/health", detach=True
    ).stdout.strip()
    try:
        time.sleep(3)
        stack.deploy(API_IMAGE=rebuilt)
        stack.wait_converged(api_image=rebuilt)
        lab.docker("stop", "--time", "30", client)
        tally = json.loads(lab.docker("logs", client).stdout)
    finally:
        lab.docker("rm", "-f", client, check=False)

    assert tally["failures"] == []
    assert tally["ok"] > 100
    assert stack.inspect_service("api")["UpdateStatus"]["State"] == "completed"


def test_data_survives_stack_rm_and_a_new_deploy(stack: SwarmStack) -> None:
    [url, *_] = stack.replica_urls()
    with stack.client(url) as client:
        conversation = client.post("/v1/conversations", json={"title": "kept"}).json()
        upload = client.post("/v1/files", files={"file": ("note.txt", b"kept\n", "text/plain")})
        assert upload.status_code == 201, upload.text

    stack.remove()
    stack.deploy()
    stack.wait_converged()

    [url, *_] = stack.replica_urls()
    with stack.client(url) as client:
        assert client.get(f"/v1/conversations/{conversation['id']}").json()["title"] == "kept"
        content = client.get(f"/v1/files/{upload.json()['id']}")
        assert content.content == b"kept\n"
