"""The generated Helm chart, offline: it renders, lints and validates for every documented set of
values, refuses bad ones by name, agrees with compose and the image, and is hardened throughout.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.harness.chart import (
    CHART,
    VALUE_SETS,
    compose_services,
    kube_versions,
    lint_problems,
    refusal,
    render,
    schema_errors,
    selects,
)
from tests.project import Project
from tests.project import render as render_project

# The default project has no chart (deploy_targets: compose); these tests need one.
WITH_CHART = {"deploy_targets": "compose+helm"}

APP_COMPONENTS = ("api", "worker", "migrate")
# uid and gid per component: the Dockerfile's APP_UID, the postgres and redis/valkey alpine users.
USERS = {"api": (10001, 10001), "worker": (10001, 10001), "migrate": (10001, 10001)}
USERS |= {"postgresql": (70, 70), "redis": (999, 1000)}
# What the "restricted" Pod Security Standard allows, of the volume types the chart could use.
PSA_RESTRICTED_VOLUMES = {"configMap", "emptyDir", "persistentVolumeClaim", "projected", "secret"}


@pytest.fixture(scope="module")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return render_project(tmp_path_factory.mktemp("chart"), WITH_CHART)


def assert_accepted(project: Project, values: dict[str, Any]) -> None:
    """Lint (strict) and Kubernetes' schemas (strict) at both ends of the supported versions."""
    objects = render(project, values).objects
    for version in kube_versions(project):
        assert lint_problems(project, values, version) == [], version
        assert schema_errors(objects, version) == [], version


# --- Helm and Kubernetes accept it ----------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_value_set_lints_and_validates(default_project: Project, value_set: str) -> None:
    assert_accepted(default_project, VALUE_SETS[value_set])


@pytest.mark.parametrize("value_set", ["defaults", "everything-on"])
def test_every_combination_lints_and_validates(charted: Project, value_set: str) -> None:
    assert_accepted(charted, VALUE_SETS[value_set])


def test_chart_is_the_projects(charted: Project) -> None:
    chart = charted.load_yaml(f"{CHART}/Chart.yaml")
    dist, version = charted.answers["project_slug"].replace("_", "-"), charted.answers["version"]

    assert (chart["name"], chart["appVersion"]) == (dist, version)
    assert chart["description"] == (
        charted.answers["description"] or charted.answers["project_name"]
    )
    assert render(charted, {}).container("api")["image"] == f"{dist}:{version}"
    assert kube_versions(charted)[0] == "1.25.0"  # as old as the schemas here go


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"api": {"replicas": 0}}, "at '/api/replicas': minimum: got 0, want 1"),
        ({"worker": {"replicas": -2}}, "at '/worker/replicas': minimum: got -2, want 1"),
        ({"replicas": 3}, "at '': additional properties 'replicas' not allowed"),
        ({"api": {"replica": 3}}, "at '/api': additional properties 'replica' not allowed"),
        ({"config": {"lm": {}}}, "at '/config': additional properties 'lm' not allowed"),
        ({"service": {"port": "http"}}, "at '/service/port': got string, want integer"),
        # null removes a default in Helm: the way to drop the CPU limit.
        ({"api": {"resources": {"limits": {"cpu": None}}}}, "limits': missing property 'cpu'"),
        ({"secrets": {"existingSecret": ""}}, "at '/secrets/existingSecret': minLength"),
        ({"secrets": {"create": True}}, "at '/secrets/values/api_keys': minLength"),
        ({"externalDatabase": {"url": "mysql://db/x"}}, "at '/externalDatabase/url'"),
        ({"uploads": {"persistence": {"accessModes": ["ReadOnlyMany"]}}}, "/accessModes/0'"),
        (
            {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
            "autoscaling.minReplicas (5) is more than autoscaling.maxReplicas (2)",
        ),
    ],
    ids=[
        "replicas-0",
        "replicas-negative",
        "unknown-key",
        "unknown-nested-key",
        "unknown-config-section",
        "port-not-a-number",
        "no-cpu-limit",
        "no-secret-named",
        "chart-secret-without-values",
        "not-postgresql",
        "read-only-uploads",
        "autoscaling-min-above-max",
    ],
)
def test_bad_values_are_refused_naming_the_key(
    default_project: Project, values: dict[str, Any], message: str
) -> None:
    assert message in refusal(default_project, values)


# --- it agrees with compose and the image ---------------------------------------------------------


def test_api_settings_and_secret_files_are_composes(charted: Project) -> None:
    rendered, api = render(charted, {}), compose_services(charted)["api"]
    env = rendered.env("api")
    items = rendered.volume("api", "secrets")["secret"]["items"]

    assert set(env) == set(api["environment"])
    assert {k: v for k, v in env.items() if k.endswith("_FILE")} == {
        k: v for k, v in api["environment"].items() if k.endswith("_FILE")
    }
    assert [item["key"] for item in items] == api["secrets"]
    assert rendered.mounts("api")["/run/secrets"]["readOnly"] is True


def test_port_probes_paths_and_user_are_the_images(charted: Project) -> None:
    dockerfile, rendered = charted.text("Dockerfile"), render(charted, {})
    api, mounts = rendered.container("api"), rendered.mounts("api")
    check = re.search(r"HEALTHCHECK.*?http://127\.0\.0\.1:(\d+)(/\S*?)'", dockerfile, re.S)
    assert check is not None
    port, path = check.groups()
    paths = dict(re.findall(r"(CONFIG_FILE|LOGS_DIR|UPLOADS_DIR)=(\S+)", dockerfile))
    uid = int(re.findall(r"ARG APP_UID=(\d+)", dockerfile)[0])
    pod_user = rendered.component("api")["spec"]["securityContext"]

    assert api["ports"][0]["containerPort"] == int(port)
    assert f"EXPOSE {port}" in dockerfile
    assert f'"--port", "{port}"]' in dockerfile
    assert api["readinessProbe"]["httpGet"]["path"] == path == "/health"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert api["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert '@router.get("/health/live")' in charted.text("app/api/health.py")
    assert set(paths.values()) <= set(mounts)
    assert (mounts[paths["CONFIG_FILE"]]["subPath"], mounts[paths["CONFIG_FILE"]]["readOnly"]) == (
        "config.yaml",
        True,
    )
    assert compose_services(charted)["api"]["volumes"][0]["target"] == paths["CONFIG_FILE"]
    assert (pod_user["runAsUser"], pod_user["runAsGroup"], pod_user["fsGroup"]) == (uid,) * 3


def test_worker_and_migrations_run_what_compose_runs(charted: Project) -> None:
    rendered, services = render(charted, {}), compose_services(charted)
    worker, migrate = rendered.container("worker"), rendered.container("migrate")

    assert worker["command"] == services["worker"]["command"]
    assert (
        worker["livenessProbe"]["exec"]["command"] == services["worker"]["healthcheck"]["test"][1:]
    )
    assert migrate["command"] == services["migrate"]["command"]
    assert rendered.mounts("worker")["/app/uploads"]["readOnly"] is True
    for name in ("api", "worker"):
        grace = int(services[name]["stop_grace_period"].removesuffix("s"))
        assert rendered.component(name)["spec"]["terminationGracePeriodSeconds"] == grace
    assert services["api"]["tmpfs"] == ["/tmp:size=16m,mode=1777"]
    assert rendered.volume("api", "tmp")["emptyDir"] == {"sizeLimit": "16Mi"}


def test_worker_metrics_port_is_the_one_configured_everywhere(charted: Project) -> None:
    config = yaml.safe_load(charted.text("config/config.yaml"))
    scrape = yaml.safe_load(charted.text("deploy/prometheus/prometheus.yml"))
    worker_job = next(job for job in scrape["scrape_configs"] if job["job_name"] == "worker")
    port = config["metrics"]["worker_port"]

    ports = render(charted, {}).container("worker")["ports"]
    assert [(p["name"], p["containerPort"]) for p in ports] == [("metrics", port)]
    assert compose_services(charted)["worker"]["expose"] == [str(port)]
    assert worker_job["dns_sd_configs"][0]["port"] == port
    # A port changed in the chart's config moves the container's port with it.
    moved = render(charted, {"config": {"metrics": {"worker_port": 9200}}}).container("worker")
    assert moved["ports"][0]["containerPort"] == 9200


def test_in_chart_servers_run_composes_images_and_data_paths(charted: Project) -> None:
    rendered, services = render(charted, VALUE_SETS["try-it-out"]), compose_services(charted)
    postgres, redis = rendered.container("postgresql"), rendered.container("redis")
    flavor = charted.answers["redis_flavor"]
    data = services["db"]["volumes"][0].removeprefix("postgres_data:")

    assert services["db"]["image"].endswith(f":-{postgres['image']}}}")
    assert services["redis"]["image"].endswith(f":-{redis['image']}}}")
    assert rendered.mounts("postgresql")[data]["name"] == "data"
    assert rendered.env("postgresql")["PGDATA"].startswith(f"{data}/")
    assert f"{flavor}-server --dir /data" in redis["command"][-1]
    assert f"{flavor}-cli ping" in redis["readinessProbe"]["exec"]["command"][-1]


# --- hardened, every pod --------------------------------------------------------------------------


def test_every_container_is_hardened_and_bounded(charted: Project) -> None:
    rendered, seen = render(charted, VALUE_SETS["everything-on"]), set()
    for name, pod in rendered.pods():
        component, spec = pod["metadata"]["labels"]["app.kubernetes.io/component"], pod["spec"]
        uid, gid = USERS[component]
        seen.add(component)
        pod_context = spec["securityContext"]
        assert (spec["automountServiceAccountToken"], spec["enableServiceLinks"]) == (False, False)
        assert (pod_context["runAsNonRoot"], pod_context["fsGroup"]) == (True, gid), name
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert {key for v in spec["volumes"] for key in v} - {"name"} <= PSA_RESTRICTED_VOLUMES
        assert all("sizeLimit" in v.get("emptyDir", {"sizeLimit": 0}) for v in spec["volumes"])
        for c in spec["containers"] + spec.get("initContainers", []):
            context = c["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert context["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert context["capabilities"] == {"drop": ["ALL"]}, (name, c["name"])
            assert (context["runAsNonRoot"], context["runAsUser"]) == (True, uid), name
            assert (context["runAsGroup"], context["seccompProfile"]["type"]) == (
                gid,
                "RuntimeDefault",
            )
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][bound]), (name, bound)
    assert seen == set(USERS)


def test_only_the_app_pods_reach_postgres_and_redis(charted: Project) -> None:
    rendered = render(charted, VALUE_SETS["try-it-out"])
    policies = rendered.of_kind("NetworkPolicy")
    app = [rendered.labels(c) for c in APP_COMPONENTS]
    (app_egress,) = [p for p in policies if selects(p["spec"]["podSelector"], app[0])]
    stranger = app[0] | {"app.kubernetes.io/instance": "another-release"}

    for server, other, port in (("postgresql", "redis", 5432), ("redis", "postgresql", 6379)):
        pod, tcp = rendered.labels(server), {"port": port, "protocol": "TCP"}
        (policy,) = [p for p in policies if selects(p["spec"]["podSelector"], pod)]
        assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
        assert policy["spec"]["egress"] == []
        (rule,) = policy["spec"]["ingress"]
        (peer,) = rule["from"]
        assert rule["ports"] == [tcp]
        assert set(peer) == {"podSelector"}  # this namespace only, no address range
        assert all(selects(peer["podSelector"], labels) for labels in app)
        refused = (stranger, pod, rendered.labels(other))
        assert not any(selects(peer["podSelector"], labels) for labels in refused)
        to_server = [r for r in app_egress["spec"]["egress"] if tcp in r["ports"]]
        assert [[selects(p["podSelector"], pod) for p in r["to"]] for r in to_server] == [[True]]


def test_external_servers_are_reached_on_their_urls_ports(default_project: Project) -> None:
    database = "postgresql://agent@pg.internal:6432/agent"
    values = {
        "externalDatabase": {"url": database},
        "externalRedis": {"url": "rediss://cache.internal:6380/0"},
        "networkPolicy": {"externalDatabasePeers": [{"ipBlock": {"cidr": "10.0.5.0/24"}}]},
    }
    rendered = render(default_project, values)
    (policy,) = rendered.of_kind("NetworkPolicy")
    rules = {r["ports"][0]["port"]: r.get("to") for r in policy["spec"]["egress"]}

    assert rules[6432] == [{"ipBlock": {"cidr": "10.0.5.0/24"}}]
    assert rules[6380] is None  # no peers given: any address, on that port only
    assert rendered.env("api")["DATABASE_URL"] == database
    assert rendered.env("migrate")["DATABASE_URL"] == database
