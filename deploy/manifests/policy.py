"""The `policy` check: the rules every workload follows."""

from __future__ import annotations

from .common import IMAGE_REPO, IMAGE_UID, PROCESSOR_DRAIN_SECONDS, Check, report
from .pods import containers
from .render import Render


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
