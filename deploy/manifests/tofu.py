"""Phase 0 in OpenTofu: the Secret it generates, and the `tofu` check."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .common import DEPLOY, SECRET_NAME, Check, report
from .render import Render


def tofu_secret_keys() -> set[str]:
    main_tf = (DEPLOY / "tofu" / "phase-0" / "main.tf").read_text()
    block = re.search(
        r'resource\s+"kubernetes_secret(?:_v1)?"\s+"\w+"\s*\{(?P<body>.*?)\n\}', main_tf, re.S
    )
    if not block or f'"{SECRET_NAME}"' not in block.group("body"):
        return set()
    data = re.search(r"\bdata\s*=\s*\{(?P<data>.*?)\}", block.group("body"), re.S)
    if not data:
        return set()
    return set(re.findall(r"^\s*\"?([A-Za-z_][A-Za-z0-9_]*)\"?\s*=", data.group("data"), re.M))


def tofu_secret_keys_of(name: str) -> set[str]:
    """The data keys of the kubernetes_secret named `name` in deploy/tofu/phase-0/main.tf."""
    main_tf = (DEPLOY / "tofu" / "phase-0" / "main.tf").read_text()
    for block in re.finditer(r'resource\s+"kubernetes_secret(?:_v1)?"\s+"\w+"\s*\{(?P<body>.*?)\n\}', main_tf, re.S):
        if f'"{name}"' in block.group("body"):
            data = re.search(r"\bdata\s*=\s*\{(?P<data>.*?)\}", block.group("body"), re.S)
            if data:
                return set(re.findall(r"^\s*\"?([A-Za-z_][A-Za-z0-9_]*)\"?\s*=", data.group("data"), re.M))
    return set()


def check_tofu(renders: list[Render], secret_keys: set[str]) -> None:
    check = Check("tofu")
    tofu_dir = DEPLOY / "tofu"
    tool = shutil.which("tofu") or shutil.which("terraform")
    if tool is None:
        check.notes.append("neither tofu nor terraform is on PATH: formatting not checked")
    else:
        proc = subprocess.run([tool, "fmt", "-check", "-recursive", "-diff", str(tofu_dir)], capture_output=True, text=True)
        check.expect(proc.returncode == 0, f"`{Path(tool).name} fmt -check` wants changes:\n{proc.stdout.strip()}")
    main_tf = (tofu_dir / "phase-0" / "main.tf").read_text()
    for resource in ("kind_cluster", "kubernetes_namespace", "random_password", "kubernetes_secret"):
        check.expect(f'resource "{resource}"' in main_tf, f"phase-0/main.tf has no {resource}")
    # The namespace both tools declare must carry the same labels, or each apply undoes the other.
    base = next((r for r in renders if r.name == "base"), None)
    namespace = base.find("Namespace", "platform") if base else None
    for key, value in ((namespace or {}).get("metadata", {}).get("labels") or {}).items():
        check.expect(f'"{key}" = "{value}"' in main_tf, f"phase-0 namespace lacks the label {key}={value} that kustomize gives it")
    check.notes.append(
        "`tofu validate` / `terraform validate` not run: they need `init` to download the kind,"
        " kubernetes and random providers, and no provider registry is reachable here"
    )
    report(check, f"fmt {'clean' if tool else 'not checked'}; Secret {SECRET_NAME} keys {sorted(secret_keys)}")
