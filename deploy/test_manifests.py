#!/usr/bin/env python3
"""Proves what can be proven about deploy/ without a cluster.

    scripts/setup.sh pytools && . scripts/env.sh
    cargo build --bins
    "$PYTOOLS/bin/python" deploy/test_manifests.py        # or: make deploy-check

Each job is a module of deploy/manifests/: render.py (render, schema), binaries.py (--help),
pods.py (walking pod templates), config.py (refs, env), network.py (ports, wiring), policy.py,
image.py, tilt.py, tofu.py, apirole.py; common.py holds the constants and the reporting. This file runs them.

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
  api-role  spine-api gets its own read-only role from Secret postgres-api-credentials (and an
            api-role Job creates that role), never anything of the writer's postgres-credentials
  tofu      `tofu|terraform fmt -check`; the Secret's keys. `validate` is NOT run: it needs the
            providers, which cannot be downloaded here (said in the output, not faked)

Environment: SPINE_BIN_DIR (default target/debug) holds the built binaries; KUBECTL (default
kubectl).
"""

from __future__ import annotations

import sys

try:
    import kubernetes_validate  # noqa: F401
    import yaml  # noqa: F401
except ImportError as exc:  # pragma: no cover - environment problem, not a test result
    sys.exit(f"FAIL setup: {exc}; run `scripts/setup.sh pytools` and use $PYTOOLS/bin/python")

from manifests.apirole import check_api_credentials
from manifests.binaries import read_binaries
from manifests.common import RESULTS
from manifests.config import check_env, check_refs
from manifests.image import check_image
from manifests.network import check_ports, check_wiring
from manifests.policy import check_policy
from manifests.render import check_schemas, render_all
from manifests.tilt import check_tilt
from manifests.tofu import check_tofu, tofu_secret_keys


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
    check_api_credentials(renders)
    failed = [c.name for c in RESULTS if c.failures]
    if failed:
        print(f"failed checks: {', '.join(failed)}")
    print(f"deploy: {len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
