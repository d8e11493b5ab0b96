"""The `ports` and `wiring` checks: probes, Services and in-cluster addresses resolve."""

from __future__ import annotations

import re

from .binaries import BinaryInfo
from .common import LISTEN_VAR, Check, report
from .pods import Container, containers, given_env, pod_spec
from .render import Render


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
