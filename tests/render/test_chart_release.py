"""The generated Helm chart as a release: migrations before the pods with only what exists by then,
the project's own config rolling the pods, volumes, traffic to the api alone, and its NOTES."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import yaml

from tests.harness.chart import CHART, SECRETS, VALUE_SETS, Rendered, render, selects
from tests.project import Project
from tests.project import render as render_project

# The default project has no chart (deploy_targets: compose); these tests need one.
WITH_CHART = {"deploy_targets": "compose+helm"}

HOOK = "helm.sh/hook"
# Objects a Pod needs to exist before it can start, by how its spec names them.
NEEDED = {
    "secret": "Secret",
    "configMap": "ConfigMap",
    "persistentVolumeClaim": "PersistentVolumeClaim",
}
QUANTITY = re.compile(r"(\d+)(Ki|Mi|Gi)")


@pytest.fixture(scope="module")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return render_project(tmp_path_factory.mktemp("chart-release"), WITH_CHART)


def annotations_of(o: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = o["metadata"].get("annotations") or {}
    return found


def needed_by(pod: dict[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of every object the pod refers to, its ServiceAccount included."""
    spec = pod["spec"]
    needed = {("ServiceAccount", spec.get("serviceAccountName", "default"))}
    for v in spec["volumes"]:
        for key, kind in NEEDED.items():
            if key in v:
                source = v[key]
                needed.add(
                    (kind, source.get("secretName") or source.get("name") or source["claimName"])
                )
    return needed


def regular(rendered: Rendered) -> set[tuple[str, str]]:
    return {
        (o["kind"], o["metadata"]["name"])
        for o in rendered.objects
        if HOOK not in annotations_of(o)
    }


def size(quantity: str) -> int:
    match = QUANTITY.fullmatch(quantity)
    assert match, quantity
    return int(match.group(1)) << 10 * (1 + ["Ki", "Mi", "Gi"].index(match.group(2)))


# --- migrations: before the pods, with only what exists by then -----------------------------------


@pytest.mark.parametrize("value_set", ["defaults", "chart-secret", "own-claim-and-account"])
def test_migrations_hook_needs_only_what_exists_before_it(
    default_project: Project, value_set: str
) -> None:
    rendered = render(default_project, VALUE_SETS[value_set])
    (job,) = rendered.of_kind("Job")
    hooks = {
        (o["kind"], o["metadata"]["name"]): o for o in rendered.objects if HOOK in annotations_of(o)
    }
    weight = int(annotations_of(job)["helm.sh/hook-weight"])

    assert annotations_of(job)[HOOK] == "pre-install,pre-upgrade"
    assert (
        annotations_of(job)["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    )
    assert job["spec"]["backoffLimit"] >= 1
    # A pre-install hook runs before any regular object of the release exists.
    for kind, name in needed_by(job["spec"]["template"]):
        assert (kind, name) not in regular(rendered), f"{kind} {name} does not exist yet"
        if (kind, name) in hooks:
            earlier = hooks[kind, name]
            assert annotations_of(earlier)[HOOK] == annotations_of(job)[HOOK]
            assert int(annotations_of(earlier)["helm.sh/hook-weight"]) < weight
            assert set(earlier["data"]) == {"postgres_password"}  # nothing else leaves the Secret


def test_with_the_in_chart_database_migrations_are_a_job_per_revision(
    default_project: Project,
) -> None:
    rendered = render(default_project, VALUE_SETS["try-it-out"])
    (job,) = rendered.of_kind("Job")

    # The in-chart server is a regular object: a pre-install hook would wait for it forever.
    assert not [o for o in rendered.objects if HOOK in annotations_of(o)]
    assert job["metadata"]["name"].endswith("-migrate-1")
    assert needed_by(job["spec"]["template"]) <= regular(rendered)


# --- config: the project's, and a change rolls the pods -------------------------------------------


def test_config_is_the_projects_config_yaml(charted: Project) -> None:
    project_config = charted.load_yaml("config/config.yaml")
    (config_map,) = render(charted, {}).of_kind("ConfigMap")
    verbatim = charted.text("config/config.yaml")
    (from_file,) = render(charted, {"configYaml": verbatim}).of_kind("ConfigMap")
    schema = json.loads(charted.text(f"{CHART}/values.schema.json"))

    assert charted.load_yaml(f"{CHART}/values.yaml")["config"] == project_config
    assert yaml.safe_load(config_map["data"]["config.yaml"]) == project_config
    for component in ("api", "worker"):
        mounted = render(charted, {}).volume(component, "config")["configMap"]["name"]
        assert mounted == config_map["metadata"]["name"]
    assert from_file["data"]["config.yaml"] == verbatim
    assert set(schema["properties"]["config"]["properties"]) == set(project_config)


def test_a_changed_config_rolls_the_api_and_worker(default_project: Project) -> None:
    def checksums(values: dict[str, Any]) -> list[str]:
        rendered = render(default_project, values)
        return [annotations_of(rendered.component(c))["checksum/config"] for c in ("api", "worker")]

    before = checksums({})
    assert before[0] == before[1]
    assert checksums({}) == before
    assert checksums({"config": {"llm": {"model": "gpt-4.1"}}}) != before


# --- volumes --------------------------------------------------------------------------------------


def test_logs_volume_holds_the_rotated_log_file(charted: Project) -> None:
    logging = charted.load_yaml("config/config.yaml")["logging"]
    rendered = render(charted, {})
    logs = rendered.volume("api", "logs")["emptyDir"]["sizeLimit"]

    assert rendered.mounts("api")["/app/logs"]["name"] == "logs"
    assert size(logs) >= logging["file_max_bytes"] * (logging["file_backup_count"] + 1)


def test_uploads_are_one_claim_for_every_pod(default_project: Project) -> None:
    rendered = render(default_project, {})
    (claim,) = rendered.of_kind("PersistentVolumeClaim")
    name = claim["metadata"]["name"]

    # The api pods write and the worker pods read: several nodes need ReadWriteMany.
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for component, read_only in (("api", False), ("worker", True)):
        assert rendered.volume(component, "uploads")["persistentVolumeClaim"]["claimName"] == name
        assert rendered.mounts(component)["/app/uploads"].get("readOnly", False) is read_only
    assert "WARNING" not in rendered.notes


@pytest.mark.parametrize(
    ("values", "warning"),
    [
        ({"uploads": {"persistence": {"enabled": False}}}, "uploads live in each pod's emptyDir"),
        ({"uploads": {"persistence": {"accessModes": ["ReadWriteOnce"]}}}, "not ReadWriteMany"),
    ],
    ids=["emptydir", "read-write-once"],
)
def test_uploads_that_pods_cannot_share_are_warned_of(
    default_project: Project, values: dict[str, Any], warning: str
) -> None:
    assert warning in render(default_project, values).notes


def test_an_existing_claim_is_used_not_made(default_project: Project) -> None:
    rendered = render(default_project, VALUE_SETS["own-claim-and-account"])

    assert rendered.of_kind("PersistentVolumeClaim") == []
    assert (
        rendered.volume("api", "uploads")["persistentVolumeClaim"]["claimName"] == "agent-uploads"
    )
    assert rendered.component("api")["spec"]["serviceAccountName"] == "agent"
    assert rendered.of_kind("ServiceAccount") == []


# --- traffic reaches the api alone ----------------------------------------------------------------


def test_service_ingress_autoscaler_and_budget_are_the_apis(default_project: Project) -> None:
    rendered = render(default_project, VALUE_SETS["everything-on"])
    api, worker = rendered.labels("api"), rendered.labels("worker")
    # The in-chart servers' Services are headless; the api's is the one with an address.
    (service,) = [s for s in rendered.of_kind("Service") if s["spec"].get("clusterIP") != "None"]
    (deployment,) = [
        d for d in rendered.of_kind("Deployment") if d["metadata"]["name"].endswith("-api")
    ]
    (ingress,) = rendered.of_kind("Ingress")
    (hpa,) = rendered.of_kind("HorizontalPodAutoscaler")
    (budget,) = rendered.of_kind("PodDisruptionBudget")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]

    assert selects({"matchLabels": service["spec"]["selector"]}, api)
    assert not selects({"matchLabels": service["spec"]["selector"]}, worker)
    (port,) = service["spec"]["ports"]
    assert backend == {"name": service["metadata"]["name"], "port": {"number": port["port"]}}
    assert port["targetPort"] == rendered.container("api")["ports"][0]["name"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert "replicas" not in deployment["spec"]  # the autoscaler's to set
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert selects(budget["spec"]["selector"], api)
    assert not selects(budget["spec"]["selector"], worker)


def test_without_autoscaling_the_api_keeps_its_replicas(default_project: Project) -> None:
    rendered = render(default_project, VALUE_SETS["fixed-replicas"])
    (deployment,) = [
        d for d in rendered.of_kind("Deployment") if d["metadata"]["name"].endswith("-api")
    ]

    assert rendered.of_kind("HorizontalPodAutoscaler") == []
    assert deployment["spec"]["replicas"] == 3


def test_notes_say_how_to_reach_the_api_and_make_the_secret(charted: Project) -> None:
    port = charted.answers["api_port"]
    dist = charted.answers["project_slug"].replace("_", "-")
    notes = render(charted, {}).notes

    assert f"port-forward service/demo-{dist} {port}:{port}" in notes
    assert f"curl http://localhost:{port}/health" in notes
    assert f"create secret generic {dist}-secrets --from-file=secrets/" in notes


def test_a_long_release_name_keeps_every_name_a_valid_label(default_project: Project) -> None:
    rendered = render(default_project, VALUE_SETS["try-it-out"], release="r" * 53)
    names = [o["metadata"]["name"] for o in rendered.objects]

    # Names become label values (job-name; controller-revision-hash adds 11 characters).
    assert max(len(n) for n in names) <= 63
    assert max(len(o["metadata"]["name"]) for o in rendered.of_kind("StatefulSet")) <= 52


def test_secret_values_appear_in_no_object_but_the_secrets(default_project: Project) -> None:
    rendered = render(default_project, VALUE_SETS["try-it-out"])
    values = [v for v in SECRETS.values() if v]

    for o in rendered.objects:
        text = json.dumps(o)
        assert o["kind"] == "Secret" or not [v for v in values if v in text], o["metadata"]["name"]
    (secret,) = [s for s in rendered.of_kind("Secret") if len(s["data"]) > 1]
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == SECRETS
