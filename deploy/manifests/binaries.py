"""What the binaries read: the variables and defaults their --help lists."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .common import BINARIES, ROOT, Check, report


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
