#!/usr/bin/env python3
"""Proves what can be proven about deploy/ without a cluster.

    scripts/setup.sh pytools && . scripts/env.sh
    cargo build --bins
    "$PYTOOLS/bin/python" deploy/test_manifests.py        # or: make deploy-check

Checks, each printed as one PASS/FAIL line (exit status 1 if any fails):
  render    every kustomization (base and each overlay) renders with `kubectl kustomize`
  schema    every rendered object validates against the Kubernetes 1.31 schemas, strictly
            (unknown fields are errors), offline, with kubernetes-validate
  refs      every configMapKeyRef / secretKeyRef / envFrom names a key that exists: in the
            rendered ConfigMap, or in the Secret deploy/tofu/phase-0 generates
  env       every variable a manifest gives one of our containers is one its binary reads (the
            `[env: NAME]` list of its --help), and each binary gets the ones it cannot do without
  ports     every probe and Service port resolves to a containerPort, and on our containers that
            port is the one the binary listens on (its API_ADDR / METRICS_ADDR as configured,
            else the default its --help shows)
  wiring    the in-cluster addresses in the config (KAFKA_BOOTSTRAP, POSTGRES_HOST:PORT) name
            Services and ports of the same render, and Redpanda advertises what clients bootstrap
            from internally and localhost:19092 externally
  policy    the issue's rules: enableServiceLinks off, requests and limits, /healthz + /readyz
            probes, non-root, a grace period longer than the processor's drain, no volumes
  image     the Dockerfile builds and copies exactly the four binaries, they are binaries the
            workspace builds, and every container of the spine image runs one of them
  tilt      the Tiltfile parses and its resources, image and overlay path exist
  tofu      `tofu|terraform fmt -check`; the Secret's keys. `validate` is NOT run: it needs the
            providers, which cannot be downloaded here (said in the output, not faked)

Environment: SPINE_BIN_DIR (default target/debug) holds the built binaries; KUBECTL (default
kubectl).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

try:
    import yaml
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError
except ImportError as exc:  # pragma: no cover - environment problem, not a test result
    sys.exit(f"FAIL setup: {exc}; run `scripts/setup.sh pytools` and use $PYTOOLS/bin/python")

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.31"

# SPEC.md, "Layout": the binaries the image ships. Three of them run in the cluster.
BINARIES = ("spine-producer", "spine-processor", "spine-api", "spine-tui")
IMAGE_REPO = "spine"
IMAGE_UID = 10001
# The variable holding each service's listen address (host:port).
LISTEN_VAR = {"spine-producer": "METRICS_ADDR", "spine-processor": "METRICS_ADDR", "spine-api": "API_ADDR"}
# What each binary cannot do without in a cluster (its defaults point at localhost). Each entry is
# a set of alternatives: one of them must be given.
REQUIRED = {
    "spine-producer": [{"KAFKA_BOOTSTRAP"}],
    "spine-processor": [
        {"KAFKA_BOOTSTRAP"},
        {"POSTGRES_HOST", "DATABASE_URL"},
        {"POSTGRES_USER", "DATABASE_URL"},
        {"POSTGRES_PASSWORD", "DATABASE_URL"},
    ],
    "spine-api": [
        {"KAFKA_BOOTSTRAP"},
        {"POSTGRES_HOST", "DATABASE_URL"},
        {"POSTGRES_USER", "DATABASE_URL"},
        {"POSTGRES_PASSWORD", "DATABASE_URL"},
    ],
}
# On SIGTERM the processor finishes the batch in hand, bounded at about this many seconds.
PROCESSOR_DRAIN_SECONDS = 30
SECRET_NAME = "postgres-credentials"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


# --------------------------------------------------------------------------------------------
# Reporting


@dataclass
class Check:
    name: str
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def expect(self, condition: bool, message: str) -> bool:
        if not condition:
            self.fail(message)
        return condition


RESULTS: list[Check] = []


def report(check: Check, summary: str) -> None:
    RESULTS.append(check)
    status = "FAIL" if check.failures else "PASS"
    print(f"{status} {check.name}: {summary}")
    for message in check.failures:
        print(f"       - {message}")
    for note in check.notes:
        print(f"       note: {note}")


# --------------------------------------------------------------------------------------------
# Rendering


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


# --------------------------------------------------------------------------------------------
# What the binaries read: their --help


@dataclass
class BinaryInfo:
    env: set[str]
    defaults: dict[str, str]  # env name -> default value shown by --help


OPTION_START = re.compile(r"^ {0,6}(?:-[A-Za-z0-9], )?--[A-Za-z0-9][\w-]*")
ENV_RE = re.compile(r"\[env:\s*([A-Za-z_][A-Za-z0-9_]*)(?:=[^\]]*)?\]")
DEFAULT_RE = re.compile(r"\[default:\s*([^\]]*?)\s*\]")


def parse_help(text: str) -> BinaryInfo:
    """The variables a clap --help lists (`[env: NAME=]`) and their defaults (`[default: V]`).

    Parsed option by option, so a default is only ever paired with its own option's variable,
    and with whitespace collapsed, so clap's line wrapping cannot split a marker.
    """
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if OPTION_START.match(line) or not blocks:
            blocks.append([line])
        else:
            blocks[-1].append(line)
    info = BinaryInfo(set(), {})
    for block in blocks:
        flat = " ".join(" ".join(block).split())
        for match in ENV_RE.finditer(flat):
            info.env.add(match.group(1))
            default = DEFAULT_RE.search(flat)
            if default:
                info.defaults[match.group(1)] = default.group(1)
    return info


def bin_dir() -> Path:
    path = Path(os.environ.get("SPINE_BIN_DIR", "target/debug"))
    return path if path.is_absolute() else ROOT / path


def read_binaries() -> dict[str, BinaryInfo]:
    check = Check("binaries")
    infos: dict[str, BinaryInfo] = {}
    directory = bin_dir()
    # A clean environment: clap prints a variable's current value in --help, and none is wanted.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    for name in BINARIES:
        path = directory / name
        if not path.is_file():
            check.fail(f"{path} is missing: build the workspace first (`cargo build --bins`) or set SPINE_BIN_DIR")
            continue
        try:
            proc = subprocess.run([str(path), "--help"], capture_output=True, text=True, env=env, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            check.fail(f"{name} --help: {exc}")
            continue
        if proc.returncode != 0:
            check.fail(f"{name} --help exited {proc.returncode}: {proc.stderr.strip()[:300]}")
            continue
        info = parse_help(proc.stdout)
        check.expect(bool(info.env), f"{name} --help lists no [env: ...] variable; is clap's `env` feature on?")
        infos[name] = info
    summary = "; ".join(f"{n}: {len(i.env)} env vars" for n, i in infos.items()) or "none read"
    report(check, f"{summary} (from {directory.relative_to(ROOT) if directory.is_relative_to(ROOT) else directory})")
    return infos


# --------------------------------------------------------------------------------------------
# The Secret OpenTofu generates


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


# --------------------------------------------------------------------------------------------
# Walking pod templates


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


# --------------------------------------------------------------------------------------------
# Checks on the rendered objects


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


def container_port_numbers(spec: dict) -> dict[str | int, int]:
    """containerPort by name and by number."""
    ports: dict[str | int, int] = {}
    for port in spec.get("ports", []):
        ports[port["containerPort"]] = port["containerPort"]
        if "name" in port:
            ports[port["name"]] = port["containerPort"]
    return ports


def probe_ports(spec: dict) -> list[tuple[str, str | int]]:
    out = []
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = spec.get(kind) or {}
        for handler in ("httpGet", "tcpSocket", "grpc"):
            if handler in probe:
                out.append((kind, probe[handler].get("port")))
    return out


def listen_port(c: Container, info: BinaryInfo, secret_keys: set[str]) -> tuple[int | None, str]:
    var = LISTEN_VAR[c.binary]
    given = given_env(c, secret_keys)
    if var in given:
        value, source = given[var], f"{var} as configured"
    else:
        value, source = info.defaults.get(var), f"{var}'s default in --help"
    if value is None:
        return None, source
    match = re.search(r":(\d+)$", value)
    return (int(match.group(1)) if match else None), f"{source} ({value})"


def labels_match(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_ports(renders: list[Render], infos: dict[str, BinaryInfo], secret_keys: set[str]) -> None:
    check = Check("ports")
    count = 0
    for render in renders:
        all_containers = containers(render)
        for c in all_containers:
            ports = container_port_numbers(c.spec)
            for kind, port in probe_ports(c.spec):
                count += 1
                check.expect(port in ports, f"{c.where}: {kind} port {port!r} is not one of its containerPorts {sorted(set(ports.values()))}")
            if c.binary in LISTEN_VAR and c.binary in infos:
                port, source = listen_port(c, infos[c.binary], secret_keys)
                if check.expect(port is not None, f"{c.where}: cannot tell which port {c.binary} listens on ({source})"):
                    for number in set(ports.values()):
                        check.expect(
                            number == port,
                            f"{c.where}: containerPort {number}, but {c.binary} listens on {port} per {source}",
                        )
                    check.expect(bool(ports), f"{c.where}: declares no containerPort for {c.binary}'s port {port}")
        for service in render.of_kind("Service"):
            selector = service.get("spec", {}).get("selector", {})
            namespace = service["metadata"].get("namespace")
            selected = [
                c for c in all_containers
                if c.namespace == namespace
                and labels_match(selector, c.workload.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}))
            ]
            where = f"{render.name}: Service/{service['metadata']['name']}"
            if not check.expect(bool(selected), f"{where}: its selector {selector} matches no pod template"):
                continue
            for sp in service["spec"].get("ports", []):
                count += 1
                target = sp.get("targetPort", sp["port"])
                owners = [c for c in selected if target in container_port_numbers(c.spec)]
                check.expect(bool(owners), f"{where}: port {sp['port']} targets {target!r}, which no selected container exposes")
    report(check, f"{count} probe and Service ports resolve to containerPorts; spine containers expose the port their binary listens on")


def split_hostports(value: str) -> list[tuple[str, int]]:
    out = []
    for part in value.split(","):
        host, _, port = part.strip().rpartition(":")
        if host and port.isdigit():
            out.append((host, int(port)))
    return out


def resolve_service_address(render: Render, host: str, port: int, namespace: str | None) -> str | None:
    """None if host:port names a Service port (or a StatefulSet pod behind a headless one)."""
    parts = host.split(".")
    if parts[-3:] == ["svc", "cluster", "local"]:
        parts = parts[:-3]
    elif parts[-1:] == ["svc"]:
        parts = parts[:-1]
    pod = None
    if len(parts) == 1:
        service_name, ns = parts[0], namespace
    elif len(parts) == 2:
        service_name, ns = parts
    elif len(parts) == 3:
        pod, service_name, ns = parts
    else:
        return f"{host} is no in-cluster Service name"
    service = render.find("Service", service_name, ns)
    if service is None:
        return f"no Service {service_name} in namespace {ns}"
    if port not in [p["port"] for p in service["spec"].get("ports", [])]:
        return f"Service {service_name} has no port {port}"
    if pod is not None:
        if service["spec"].get("clusterIP") != "None":
            return f"{host} addresses a pod, but Service {service_name} is not headless"
        owners = [
            s for s in render.of_kind("StatefulSet")
            if s["spec"].get("serviceName") == service_name
            and pod.startswith(s["metadata"]["name"] + "-")
            and pod[len(s["metadata"]["name"]) + 1:].isdigit()
            and int(pod[len(s["metadata"]["name"]) + 1:]) < s["spec"].get("replicas", 1)
        ]
        if not owners:
            return f"no StatefulSet of Service {service_name} has a pod {pod}"
    return None


def redpanda_args(render: Render) -> dict[str, str]:
    sts = render.find("StatefulSet", "redpanda")
    if sts is None:
        return {}
    args: dict[str, str] = {}
    for c in pod_spec(sts).get("containers", []):
        for arg in [*(c.get("command") or []), *(c.get("args") or [])]:
            if arg.startswith("--") and "=" in arg:
                key, _, value = arg.partition("=")
                args[key] = value
    return args


def check_wiring(renders: list[Render], secret_keys: set[str]) -> None:
    check = Check("wiring")
    count = 0
    for render in renders:
        if render.name == "base":
            continue  # phase 0 holds the config, not yet what it points at
        for c in containers(render):
            given = given_env(c, secret_keys)
            addresses = []
            if given.get("KAFKA_BOOTSTRAP"):
                addresses += [("KAFKA_BOOTSTRAP", h, p) for h, p in split_hostports(given["KAFKA_BOOTSTRAP"])]
            if given.get("POSTGRES_HOST") and c.binary:
                pg_port = int(given.get("POSTGRES_PORT") or 5432)
                addresses.append(("POSTGRES_HOST:POSTGRES_PORT", given["POSTGRES_HOST"], pg_port))
            for var, host, port in addresses:
                count += 1
                problem = resolve_service_address(render, host, port, c.namespace)
                check.expect(problem is None, f"{c.where}: {var} {host}:{port}: {problem}")
        args = redpanda_args(render)
        if args:
            listeners = dict(
                entry.split("://", 1) for entry in args.get("--advertise-kafka-addr", "").split(",") if "://" in entry
            )
            config = render.find("ConfigMap", "platform-config") or {}
            bootstrap = split_hostports(config.get("data", {}).get("KAFKA_BOOTSTRAP", ""))
            count += 1
            check.expect(
                [tuple(x) for x in split_hostports(listeners.get("internal", ""))] == bootstrap,
                f"{render.name}: Redpanda advertises internal://{listeners.get('internal')}, but clients bootstrap from "
                f"{config.get('data', {}).get('KAFKA_BOOTSTRAP')}: metadata would send them elsewhere",
            )
            check.expect(
                listeners.get("external") == "localhost:19092",
                f"{render.name}: Redpanda's external listener must be advertised as localhost:19092 for port-forwards, "
                f"is {listeners.get('external')}",
            )
            sts = render.find("StatefulSet", "redpanda")
            exposed = {p["containerPort"] for c in pod_spec(sts)["containers"] for p in c.get("ports", [])}
            check.expect(19092 in exposed, f"{render.name}: Redpanda does not expose containerPort 19092")
    report(check, f"{count} in-cluster addresses resolve to Services of the same render; Redpanda's listeners agree")


def check_policy(renders: list[Render]) -> None:
    check = Check("policy")
    count = 0
    for render in renders:
        for c in containers(render):
            count += 1
            pod, spec, kind = c.pod, c.spec, c.workload["kind"]
            check.expect(pod.get("enableServiceLinks") is False, f"{c.where}: enableServiceLinks must be false (service env vars clobber POSTGRES_PORT)")
            resources = spec.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    check.expect(resource in resources.get(section, {}), f"{c.where}: no {section}.{resource}")
            pod_sc, sc = pod.get("securityContext", {}), spec.get("securityContext", {})
            check.expect(
                sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True,
                f"{c.where}: must set runAsNonRoot: true",
            )
            check.expect(sc.get("allowPrivilegeEscalation") is False, f"{c.where}: must set allowPrivilegeEscalation: false")
            check.expect("ALL" in sc.get("capabilities", {}).get("drop", []), f"{c.where}: must drop ALL capabilities")
            if kind in ("Deployment", "StatefulSet"):
                check.expect("readinessProbe" in spec and "livenessProbe" in spec, f"{c.where}: needs liveness and readiness probes")
            if c.image_repo == IMAGE_REPO:
                uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
                check.expect(uid == IMAGE_UID, f"{c.where}: runAsUser {uid}, the image's user is {IMAGE_UID}")
                check.expect(sc.get("readOnlyRootFilesystem") is True, f"{c.where}: spine containers write nothing: readOnlyRootFilesystem: true")
                live = (spec.get("livenessProbe") or {}).get("httpGet", {}).get("path")
                ready = (spec.get("readinessProbe") or {}).get("httpGet", {}).get("path")
                check.expect(live == "/healthz", f"{c.where}: liveness probe must GET /healthz, is {live}")
                check.expect(ready == "/readyz", f"{c.where}: readiness probe must GET /readyz, is {ready}")
            if c.binary == "spine-processor":
                grace = pod.get("terminationGracePeriodSeconds", 30)
                check.expect(
                    grace > PROCESSOR_DRAIN_SECONDS,
                    f"{c.where}: terminationGracePeriodSeconds {grace} does not outlast the processor's {PROCESSOR_DRAIN_SECONDS} s drain",
                )
                check.expect(not pod.get("volumes") and not spec.get("volumeMounts"), f"{c.where}: the processor needs no volume (offsets live in Postgres)")
    report(check, f"{count} containers: service links off, requests+limits, probes, non-root, drain-safe grace period")


# --------------------------------------------------------------------------------------------
# The image


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            instruction, _, args = full.partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def workspace_binaries() -> tuple[set[str], list[str]]:
    problems: list[str] = []
    root_manifest = ROOT / "Cargo.toml"
    if not root_manifest.is_file():
        return set(), ["no Cargo.toml at the repository root"]
    members = tomllib.loads(root_manifest.read_text()).get("workspace", {}).get("members", [])
    manifests = []
    for member in members:
        manifests += [p / "Cargo.toml" for p in ROOT.glob(member)]
    binaries: set[str] = set()
    for manifest in manifests:
        if not manifest.is_file():
            problems.append(f"workspace member {manifest.parent.relative_to(ROOT)} has no Cargo.toml")
            continue
        data = tomllib.loads(manifest.read_text())
        package = data.get("package", {}).get("name")
        bins = data.get("bin", [])
        binaries |= {b["name"] for b in bins if "name" in b}
        if (manifest.parent / "src" / "main.rs").is_file() and package and data.get("package", {}).get("autobins", True):
            binaries.add(package)
        binaries |= {p.stem for p in (manifest.parent / "src" / "bin").glob("*.rs")}
    return binaries, problems


def check_image(renders: list[Render]) -> None:
    check = Check("image")
    dockerfile = DEPLOY / "Dockerfile"
    instructions = dockerfile_instructions(dockerfile.read_text())
    stages: list[list[tuple[str, str]]] = []
    for instruction, args in instructions:
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, args))
    runtime = stages[-1] if stages else []
    copied: list[str] = []
    for instruction, args in runtime:
        if instruction == "COPY" and "--from=" in args:
            words = [w for w in args.split() if not w.startswith("--")]
            sources, destination = words[:-1], words[-1]
            check.expect(destination.rstrip("/") == "/usr/local/bin", f"Dockerfile runtime stage copies to {destination}, not /usr/local/bin")
            copied += [Path(s).name for s in sources]
    check.expect(
        sorted(copied) == sorted(BINARIES),
        f"Dockerfile runtime stage must copy exactly {', '.join(BINARIES)}; copies {', '.join(copied) or 'nothing'}",
    )
    built = set()
    for stage in stages:
        for instruction, args in stage:
            if instruction == "RUN" and "cargo build" in args:
                built |= set(re.findall(r"--bin[ =]([\w-]+)", args))
    check.expect(built == set(BINARIES), f"Dockerfile builds --bin {sorted(built)}, expected {sorted(BINARIES)}")
    users = [args for instruction, args in runtime if instruction == "USER"]
    check.expect(bool(users) and users[-1].split(":")[0] == str(IMAGE_UID), f"Dockerfile runtime USER must be {IMAGE_UID}, is {users[-1] if users else 'unset (root)'}")
    for instruction, args in runtime:
        if instruction in ("CMD", "ENTRYPOINT"):
            first = re.findall(r'"([^"]+)"', args)[:1] or args.split()[:1]
            check.expect(bool(first) and first[0] in BINARIES, f"Dockerfile {instruction} {args} runs none of the binaries")

    workspace, problems = workspace_binaries()
    for problem in problems:
        check.fail(problem)
    for name in BINARIES:
        check.expect(name in workspace, f"the workspace builds no binary {name} (read the members' Cargo.toml, [[bin]] and src/main.rs)")
    extra = sorted(workspace - set(BINARIES))
    if extra:
        check.notes.append(f"workspace binaries not in the image: {', '.join(extra)}")

    for render in renders:
        for c in containers(render):
            if c.image_repo != IMAGE_REPO:
                continue
            command = c.spec.get("command") or []
            check.expect(
                bool(command) and command[0] in copied,
                f"{c.where}: runs the spine image, so its command must name one of its binaries; is {command}",
            )
    report(check, f"runtime stage ships {', '.join(copied) or 'nothing'}; all are workspace binaries; every spine container runs one")


# --------------------------------------------------------------------------------------------
# Tilt and OpenTofu


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


def main() -> int:
    renders = render_all()
    secret_keys = tofu_secret_keys()
    if renders:
        check_schemas(renders)
    infos = read_binaries()
    check_refs(renders, secret_keys)
    check_env(renders, infos, secret_keys)
    check_ports(renders, infos, secret_keys)
    check_wiring(renders, secret_keys)
    check_policy(renders)
    check_image(renders)
    check_tilt(renders)
    check_tofu(renders, secret_keys)
    failed = [c.name for c in RESULTS if c.failures]
    if failed:
        print(f"failed checks: {', '.join(failed)}")
    print(f"deploy: {len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
