"""What every check shares: the project's constants about its binaries and image, and reporting."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.31"

# The binaries the image ships (README.md, "How it is built"). Three of them run in the cluster.
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
    # Its own read-only role (apirole.py): never the writer's user and password.
    "spine-api": [
        {"POSTGRES_HOST", "DATABASE_URL", "API_DATABASE_URL"},
        {"POSTGRES_API_USER", "API_DATABASE_URL"},
        {"POSTGRES_API_PASSWORD", "API_DATABASE_URL"},
    ],
}
# On SIGTERM the processor finishes the batch in hand, bounded at about this many seconds.
PROCESSOR_DRAIN_SECONDS = 30
SECRET_NAME = "postgres-credentials"
# The API's own read-only role's credentials (apirole.py).
API_SECRET_NAME = "postgres-api-credentials"
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
