"""The API's own Postgres role: spine-api reads as a read-only role whose credentials come from
the Secret postgres-api-credentials, created by an api-role Job, never from the writer's."""

from __future__ import annotations

from .common import API_SECRET_NAME, SECRET_NAME, Check, report
from .pods import containers
from .render import Render
from .tofu import tofu_secret_keys_of

# What would give spine-api the writer's identity or password.
WRITER_VARS = {"POSTGRES_USER", "POSTGRES_PASSWORD", "DATABASE_URL"}


def check_api_credentials(renders: list[Render]) -> None:
    """spine-api reads as its own role: its credentials come from postgres-api-credentials, and
    it never receives anything of the writer's postgres-credentials Secret."""
    check = Check("api-role")
    keys = tofu_secret_keys_of(API_SECRET_NAME)
    check.expect(
        {"POSTGRES_API_USER", "POSTGRES_API_PASSWORD"} <= keys,
        f"deploy/tofu/phase-0/main.tf must generate Secret {API_SECRET_NAME} with keys POSTGRES_API_USER and"
        f" POSTGRES_API_PASSWORD; found {sorted(keys) or 'none'}",
    )
    seen = 0
    for render in renders:
        for c in containers(render):
            if c.binary != "spine-api":
                continue
            seen += 1
            for source in c.spec.get("envFrom", []):
                ref = source.get("secretRef", {}).get("name")
                check.expect(ref != SECRET_NAME, f"{c.where}: envFrom takes the writer's Secret {SECRET_NAME}")
            for var in c.spec.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef", {})
                check.expect(
                    ref.get("name") != SECRET_NAME,
                    f"{c.where}: {var['name']} comes from the writer's Secret {SECRET_NAME}",
                )
                check.expect(var["name"] not in WRITER_VARS, f"{c.where}: gets {var['name']}, the writer's")
                if var["name"] in ("POSTGRES_API_USER", "POSTGRES_API_PASSWORD"):
                    check.expect(
                        ref.get("name") == API_SECRET_NAME,
                        f"{c.where}: {var['name']} must come from Secret {API_SECRET_NAME}",
                    )
        if any(c.binary == "spine-api" for c in containers(render)):
            job = render.find("Job", "api-role")
            check.expect(job is not None, f"{render.name}: runs spine-api but has no api-role Job creating its role")
    check.expect(seen > 0 or all(r.name == "base" for r in renders), "no container runs spine-api")
    report(check, f"{seen} spine-api containers read as the role in {API_SECRET_NAME}, never the writer's")
