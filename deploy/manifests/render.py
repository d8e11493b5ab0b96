"""Rendering every kustomization, and checking the objects against the Kubernetes schemas."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

from .common import K8S, KUBERNETES_VERSION, ROOT, Check, report


@dataclass
class Render:
    name: str  # "base" or the overlay's directory name
    docs: list[dict]

    def of_kind(self, *kinds: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") in kinds]

    def find(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        for d in self.of_kind(kind):
            meta = d.get("metadata", {})
            if meta.get("name") == name and (namespace is None or meta.get("namespace") == namespace):
                return d
        return None


def kustomizations() -> list[Path]:
    overlays = sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
    return [K8S / "base", *overlays]


def render_all() -> list[Render]:
    check = Check("render")
    renders: list[Render] = []
    kubectl = os.environ.get("KUBECTL", "kubectl")
    if shutil.which(kubectl) is None:
        check.fail(f"`{kubectl}` is not on PATH: install kubectl (scripts/setup.sh apt) to render the manifests")
        report(check, "cannot render")
        return renders
    dirs = kustomizations()
    for directory in dirs:
        proc = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True)
        rel = directory.relative_to(ROOT)
        if proc.returncode != 0:
            check.fail(f"kubectl kustomize {rel}: {proc.stderr.strip()}")
            continue
        docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
        name = "base" if directory.name == "base" else directory.name
        renders.append(Render(name, docs))
    if not check.failures:
        check.expect(any(r.name != "base" for r in renders), "no overlay under deploy/k8s/overlays")
    report(check, ", ".join(f"{r.name} ({len(r.docs)} objects)" for r in renders) or "nothing rendered")
    return renders


def check_schemas(renders: list[Render]) -> None:
    check = Check("schema")
    count = 0
    for render in renders:
        for doc in render.docs:
            what = f"{render.name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
                count += 1
            except ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                check.fail(f"{what}: {path}: {exc.message}")
            except SchemaNotFoundError as exc:
                check.fail(f"{what}: {exc.message}")
    report(check, f"{count} objects valid against Kubernetes {KUBERNETES_VERSION} (strict, offline)")
