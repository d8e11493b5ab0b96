"""The `tilt` check: the Tiltfile parses and names what exists."""

from __future__ import annotations

import ast
import re

from .common import DEPLOY, IMAGE_REPO, K8S, Check, report
from .pods import workloads
from .render import Render


def check_tilt(renders: list[Render]) -> None:
    check = Check("tilt")
    text = (DEPLOY / "Tiltfile").read_text()
    try:
        tree = ast.parse(text)  # Starlark's syntax is a subset of Python's
    except SyntaxError as exc:
        check.fail(f"Tiltfile does not parse: {exc}")
        report(check, "unparsable")
        return
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]

    def literal_args(name: str) -> list[ast.Call]:
        return [c for c in calls if c.func.id == name]

    resources = set()
    for call in literal_args("k8s_resource"):
        if call.args and isinstance(call.args[0], ast.Constant):
            resources.add(call.args[0].value)
        for kw in call.keywords:
            if kw.arg == "resource_deps" and isinstance(kw.value, ast.List):
                resources |= {e.value for e in kw.value.elts if isinstance(e, ast.Constant)}
    new_names = {
        kw.value.value for call in literal_args("k8s_resource") for kw in call.keywords
        if kw.arg == "new_name" and isinstance(kw.value, ast.Constant)
    }
    overlay = next((r for r in renders if r.name == "phase-1-ingest"), None)
    if overlay is not None:
        workload_names = {w["metadata"]["name"] for w in workloads(overlay)}
        for name in sorted(resources - new_names):
            check.expect(name in workload_names, f"Tiltfile names resource {name}, which phase-1-ingest has no workload for")
        forwards = re.findall(r"port_forward\((\d+)", text)
        check.expect({"8000", "19092"} <= set(forwards), f"Tiltfile must port-forward 8000 and 19092, forwards {forwards}")
    refs = [c.args[0].value for c in literal_args("docker_build") if c.args and isinstance(c.args[0], ast.Constant)]
    check.expect(refs == [IMAGE_REPO], f"Tiltfile must build the one image {IMAGE_REPO!r}, builds {refs}")
    check.expect("k8s/overlays/" in text and (K8S / "overlays").is_dir(), "Tiltfile must deploy kustomize('k8s/overlays/' + phase)")
    report(check, f"parses; {len(resources)} resources exist in the render; builds {IMAGE_REPO!r}; forwards 8000 and 19092")
