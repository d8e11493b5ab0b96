"""The `refs` and `env` checks: every reference resolves, every variable is one the binary reads."""

from __future__ import annotations

from .binaries import BinaryInfo
from .common import API_SECRET_NAME, REQUIRED, SECRET_NAME, Check, report
from .pods import containers, given_env
from .render import Render
from .tofu import tofu_secret_keys_of


def check_refs(renders: list[Render], secret_keys: set[str]) -> None:
    check = Check("refs")
    check.expect(
        {"POSTGRES_USER", "POSTGRES_PASSWORD"} <= secret_keys,
        f"deploy/tofu/phase-0/main.tf must generate Secret {SECRET_NAME} with keys POSTGRES_USER and"
        f" POSTGRES_PASSWORD; found {sorted(secret_keys) or 'none'}",
    )
    count = 0
    for render in renders:
        for c in containers(render):
            refs = []
            for var in c.spec.get("env", []):
                source = var.get("valueFrom", {})
                if "configMapKeyRef" in source:
                    refs.append(("ConfigMap", source["configMapKeyRef"], var["name"]))
                if "secretKeyRef" in source:
                    refs.append(("Secret", source["secretKeyRef"], var["name"]))
            for source in c.spec.get("envFrom", []):
                if "configMapRef" in source:
                    refs.append(("ConfigMap", {**source["configMapRef"], "key": None}, "envFrom"))
                if "secretRef" in source:
                    refs.append(("Secret", {**source["secretRef"], "key": None}, "envFrom"))
            for kind, ref, var_name in refs:
                count += 1
                name, key = ref.get("name"), ref.get("key")
                if kind == "ConfigMap":
                    cm = render.find("ConfigMap", name, c.namespace)
                    if not check.expect(cm is not None, f"{c.where}: {var_name} refers to ConfigMap {name}, which the render lacks"):
                        continue
                    if key is not None:
                        check.expect(
                            key in cm.get("data", {}),
                            f"{c.where}: {var_name} refers to key {key} of ConfigMap {name}, which has no such key",
                        )
                else:
                    in_render = render.find("Secret", name, c.namespace)
                    if in_render is not None:
                        keys = set(in_render.get("data", {})) | set(in_render.get("stringData", {}))
                    elif name == SECRET_NAME:
                        keys = secret_keys
                    elif name == API_SECRET_NAME:
                        keys = tofu_secret_keys_of(API_SECRET_NAME)
                    else:
                        check.fail(f"{c.where}: {var_name} refers to Secret {name}, which neither the render nor OpenTofu creates")
                        continue
                    if key is not None:
                        check.expect(key in keys, f"{c.where}: {var_name} refers to key {key} of Secret {name}, which has no such key")
    report(check, f"{count} ConfigMap/Secret references resolve")


def check_env(renders: list[Render], infos: dict[str, BinaryInfo], secret_keys: set[str]) -> None:
    check = Check("env")
    seen = 0
    for render in renders:
        for c in containers(render):
            binary = c.binary
            if binary is None:
                continue
            seen += 1
            if binary not in infos:
                check.fail(f"{c.where}: cannot check, {binary} --help was not read")
                continue
            given = set(given_env(c, secret_keys))
            for name in sorted(given - infos[binary].env):
                check.fail(f"{c.where}: gives {name}, which {binary} does not read (not in its --help [env: ...] list)")
            for alternatives in REQUIRED.get(binary, []):
                check.expect(
                    bool(alternatives & given),
                    f"{c.where}: {binary} needs {' or '.join(sorted(alternatives))} in the cluster, and gets none",
                )
    check.expect(seen > 0 or all(r.name == "base" for r in renders), "no container runs a spine binary")
    report(check, f"{seen} spine containers get exactly variables their binary reads, and every required one")
