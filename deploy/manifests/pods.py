"""Walking the pod templates of a render: containers, and the environment each is given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .common import BINARIES, SECRET_NAME, WORKLOAD_KINDS
from .render import Render


@dataclass
class Container:
    render: Render
    workload: dict
    pod: dict  # the pod spec
    spec: dict  # the container

    @property
    def where(self) -> str:
        meta = self.workload["metadata"]
        return f"{self.render.name}: {self.workload['kind']}/{meta['name']} container {self.spec.get('name')}"

    @property
    def namespace(self) -> str | None:
        return self.workload["metadata"].get("namespace")

    @property
    def binary(self) -> str | None:
        command = self.spec.get("command") or []
        return Path(command[0]).name if command and Path(command[0]).name in BINARIES else None

    @property
    def image_repo(self) -> str:
        image = self.spec.get("image", "")
        image = image.split("@")[0]
        last = image.rsplit("/", 1)[-1]
        return last.split(":")[0]


def workloads(render: Render) -> list[dict]:
    return render.of_kind(*WORKLOAD_KINDS)


def pod_spec(workload: dict) -> dict:
    return workload.get("spec", {}).get("template", {}).get("spec", {})


def containers(render: Render) -> list[Container]:
    out = []
    for workload in workloads(render):
        pod = pod_spec(workload)
        for spec in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            out.append(Container(render, workload, pod, spec))
    return out


def resolve_value(c: Container, var: dict, secret_keys: set[str]) -> str | None:
    """The value a container's env entry resolves to, where the render alone can tell."""
    if "value" in var:
        return str(var["value"])
    ref = var.get("valueFrom", {}).get("configMapKeyRef")
    if ref:
        cm = c.render.find("ConfigMap", ref.get("name"), c.namespace)
        return None if cm is None else cm.get("data", {}).get(ref.get("key"))
    return None


def given_env(c: Container, secret_keys: set[str]) -> dict[str, str | None]:
    """Every variable the container is given (env and expanded envFrom) -> value if known."""
    given: dict[str, str | None] = {}
    for source in c.spec.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            cm = c.render.find("ConfigMap", source["configMapRef"].get("name"), c.namespace) or {}
            for key, value in cm.get("data", {}).items():
                given[prefix + key] = value
        if "secretRef" in source and source["secretRef"].get("name") == SECRET_NAME:
            for key in secret_keys:
                given[prefix + key] = None
    for var in c.spec.get("env", []):
        given[var["name"]] = resolve_value(c, var, secret_keys)
    return given
