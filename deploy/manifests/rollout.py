"""The `rollout` check: how the processor's Deployment replaces its pods."""

from __future__ import annotations

from .common import Check, report
from .render import Render


def check_processor_rollout(renders: list[Render]) -> None:
    """The processor's Deployment replaces its pods with `strategy: Recreate`: a rolling update
    runs the old and the new image at once, and a migration the new image applies at start-up
    (such as a backfill of a table the old image does not keep) must not race the old image's
    batches."""
    check = Check("rollout")
    count = 0
    for render in renders:
        for d in render.of_kind("Deployment"):
            pods = d.get("spec", {}).get("template", {}).get("spec", {})
            commands = [" ".join(c.get("command", []) + c.get("args", [])) for c in pods.get("containers", [])]
            if not any("spine-processor" in cmd for cmd in commands):
                continue
            count += 1
            strategy = d.get("spec", {}).get("strategy", {}).get("type", "RollingUpdate")
            check.expect(
                strategy == "Recreate",
                f"{render.name}/{d['metadata']['name']}: strategy {strategy}; the processor must be Recreate "
                "(an old and a new image must not run across a migration)",
            )
    check.expect(count > 0 or not renders, "no processor Deployment found")
    report(check, f"{count} processor Deployments: strategy Recreate")
