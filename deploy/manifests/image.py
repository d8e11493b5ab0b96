"""The `image` check: the Dockerfile ships exactly the workspace's four binaries."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from .common import BINARIES, DEPLOY, IMAGE_REPO, IMAGE_UID, ROOT, Check, report
from .pods import containers
from .render import Render


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
