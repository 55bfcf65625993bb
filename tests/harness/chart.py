"""A generated project's Helm chart, checked offline: rendered and linted by Helm's own Go code
(helm_python), each object validated against Kubernetes' schemas (kubernetes-validate).

Nothing here talks to a cluster: what this proves is that Helm and the API server's schemas
accept the objects, not that the pods run.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import helm_python
import kubernetes_validate
import kubernetes_validate.utils
import yaml

from tests.project import Project

CHART = "deploy/helm"
RELEASE = "demo"
NAMESPACE = "agents"
SECRETS = {
    "postgres_password": "pg-7f3a9c",
    "redis_password": "redis-51be0d",
    "api_keys": "ci:key-2c8e41",
    "secret_key": "secret-9d04aa",
    "openai_api_key": "",
    "anthropic_api_key": "",
    "gemini_api_key": "",
}
TRY_IT_OUT = {
    "postgresql": {"enabled": True},
    "redis": {"enabled": True},
    "secrets": {"create": True, "values": SECRETS},
}
# Sets of values the chart's README describes, by name.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "try-it-out": TRY_IT_OUT,
    "everything-on": {
        **TRY_IT_OUT,
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "tls": [{"secretName": "agent-tls", "hosts": ["agent.example.com"]}],
        },
    },
    "fixed-replicas": {"autoscaling": {"enabled": False}, "api": {"replicas": 3}},
    "chart-secret": {"secrets": {"create": True, "values": SECRETS}},
    "uploads-in-pods": {"uploads": {"persistence": {"enabled": False}}},
    "own-claim-and-account": {
        "uploads": {"persistence": {"existingClaim": "agent-uploads"}},
        "serviceAccount": {"create": False, "name": "agent"},
    },
    "no-network-policy": {
        "networkPolicy": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
    },
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}

# kubernetes-validate reads its 1.8 MB definitions file again for every object; the files never
# change, so one read per file and version is enough.
kubernetes_validate.utils.schema_contents = functools.cache(
    kubernetes_validate.utils.schema_contents
)


@dataclass(frozen=True)
class Rendered:
    """The objects one `helm template` would print, and the NOTES shown after an install."""

    objects: list[dict[str, Any]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name_suffix: str) -> dict[str, Any]:
        """The one object of that kind whose name ends with the suffix."""
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"{kind} *{name_suffix}: {[o['metadata']['name'] for o in found]}"
        return found[0]

    def pods(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each workload's name and pod template."""
        for o in self.objects:
            if o["kind"] in WORKLOAD_KINDS:
                yield o["metadata"]["name"], o["spec"]["template"]

    def component(self, name: str) -> dict[str, Any]:
        """The pod template of the workload of that component (api, worker, migrate...)."""
        found = [
            pod
            for _, pod in self.pods()
            if pod["metadata"]["labels"]["app.kubernetes.io/component"] == name
        ]
        assert len(found) == 1, name
        return found[0]

    def labels(self, component: str) -> dict[str, str]:
        found: dict[str, str] = self.component(component)["metadata"]["labels"]
        return found

    def container(self, component: str) -> dict[str, Any]:
        """The one container of the component's pods."""
        (only,) = self.component(component)["spec"]["containers"]
        return dict(only)

    def mounts(self, component: str) -> dict[str, dict[str, Any]]:
        """The container's volume mounts by path."""
        return {m["mountPath"]: m for m in self.container(component)["volumeMounts"]}

    def volume(self, component: str, name: str) -> dict[str, Any]:
        (found,) = [v for v in self.component(component)["spec"]["volumes"] if v["name"] == name]
        return dict(found)

    def env(self, component: str) -> dict[str, str]:
        return {e["name"]: e["value"] for e in self.container(component)["env"]}


def compose_services(project: Project) -> dict[str, Any]:
    """The services of the project's compose.yaml, anchors merged."""
    services: dict[str, Any] = project.load_yaml("compose.yaml")["services"]
    return services


def render(project: Project, values: dict[str, Any], *, release: str = RELEASE) -> Rendered:
    """Render the project's chart as `helm install` would (schema checked), and parse it."""
    with helm_python.Chart.load(project.path / CHART) as chart:
        manifests = chart.render(values, name=release, namespace=NAMESPACE, is_install=True)
    objects = [
        document
        for path, text in sorted(manifests.items())
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]
    notes = next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))
    return Rendered(objects, notes)


def refusal(project: Project, values: dict[str, Any]) -> str:
    """Helm's message for values it refuses; fails the test if it renders them."""
    try:
        render(project, values)
    except helm_python.HelmError as error:
        return str(error)
    raise AssertionError(f"rendered with {values}")


def lint_problems(project: Project, values: dict[str, Any], kube_version: str) -> list[str]:
    """What `helm lint --strict --kube-version` reports as a warning or an error."""
    report = helm_python.lint(
        project.path / CHART, values, strict=True, kube_version=f"v{kube_version}"
    )
    warnings = [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]
    return warnings + list(report["errors"])


def kube_versions(project: Project) -> tuple[str, str]:
    """The oldest Kubernetes the chart declares (kubeVersion) and the newest with schemas here."""
    declared = project.load_yaml(f"{CHART}/Chart.yaml")["kubeVersion"]
    match = re.fullmatch(r">=\s*(\d+\.\d+\.\d+)(-0)?", declared)
    assert match, f"kubeVersion {declared!r} is not a plain lower bound"
    # Without schemas of its own, kubernetes-validate would quietly use an older version's.
    assert match.group(1) in kubernetes_validate.utils.all_versions(), f"no schemas for {declared}"
    return match.group(1), str(kubernetes_validate.latest_version())


def schema_errors(objects: list[dict[str, Any]], kube_version: str) -> list[str]:
    """Each object that Kubernetes' schema of that version refuses, strictly (no unknown field)."""
    errors = []
    for o in objects:
        try:
            kubernetes_validate.validate(o, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            errors.append(f"{o['kind']}/{o['metadata']['name']}: {path}: {error.message}")
    return errors


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects the labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        present = labels.get(key) in expression.get("values", [])
        holds = {
            "In": present,
            "NotIn": not present,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not holds:
            return False
    return True
