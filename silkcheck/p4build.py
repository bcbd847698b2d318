"""Compile ``p4/silkroad.p4`` for BMv2 with the constants of a ``Config``.

The program's ``#ifndef`` defaults are only defaults: every build passes
``Config.p4_constants()`` as ``-D`` defines, and the output folder is keyed by
those constants and the source, so one folder is one (program, config) pair.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from model.config import Config
from silkcheck.targets import TargetError

ROOT = Path(__file__).resolve().parent.parent
P4_SOURCE = ROOT / "p4" / "silkroad.p4"
BUILD_ROOT = ROOT / "build" / "p4"


class ToolMissing(TargetError):
    """A P4 tool (p4c, simple_switch_grpc) is not on PATH."""


class BuildError(TargetError):
    """p4c rejected the program."""


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(
            f"{name} is not on PATH: install p4c and BMv2 (simple_switch_grpc) from p4lang "
            "(https://github.com/p4lang/p4c, https://github.com/p4lang/behavioral-model)"
        )
    return path


@dataclass(frozen=True)
class Build:
    directory: Path
    json: Path
    p4info: Path
    warnings: str


def defines(config: Config) -> list[str]:
    return [f"-D{name}={value}" for name, value in config.p4_constants().items()]


def build_dir(config: Config, root: Path | None = None) -> Path:
    root = BUILD_ROOT if root is None else root
    key = json.dumps(config.p4_constants(), sort_keys=True) + P4_SOURCE.read_text()
    return root / hashlib.sha256(key.encode()).hexdigest()[:16]


def build(config: Config, root: Path | None = None) -> Build:
    """Compile (or reuse a finished compile of) the program for ``config``."""
    directory = build_dir(config, root)
    if not (directory / "warnings.txt").exists():
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "constants.json").write_text(json.dumps(config.p4_constants(), indent=2) + "\n")
    return compile_program(P4_SOURCE, directory, defines(config))


def compile_program(source: Path, directory: Path, flags: list[str] | None = None) -> Build:
    """p4c for BMv2 (v1model) into ``directory``, reused once it finished there (``warnings.txt``).

    p4c writes its preprocessed source (``.p4i``) into the output folder and reads it back, so two
    processes compiling the same program into one folder (two Dask workers, each starting its own
    switch) truncate each other's input. Each compile runs in a private scratch folder; its files
    then replace the shared folder's one by one, ``warnings.txt`` last, each replace atomic.
    """
    result = Build(directory, directory / f"{source.stem}.json", directory / f"{source.stem}.p4info.txtpb", "")
    done = directory / "warnings.txt"
    if done.exists():
        return Build(result.directory, result.json, result.p4info, done.read_text())
    p4c = require_tool("p4c")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".compiling-") as scratch_name:
        scratch = Path(scratch_name)
        command = [
            p4c, "--target", "bmv2", "--arch", "v1model", "--std", "p4-16",
            *(flags or []),
            "-o", str(scratch),
            "--p4runtime-files", str(scratch / result.p4info.name),
            str(source),
        ]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(f"p4c failed on {source} ({' '.join(flags or [])}):\n{proc.stderr.strip()}")
        warnings = (proc.stdout + proc.stderr).strip()
        (scratch / done.name).write_text(warnings)
        for output in sorted(scratch.iterdir(), key=lambda path: path.name == done.name):
            os.replace(output, directory / output.name)
    return Build(result.directory, result.json, result.p4info, warnings)


# ---------------------------------------------------------------- reading the source without p4c

_DEFAULT = re.compile(r"#ifndef (\w+)\s*\n#define \1 (\S+)")
_HASH = re.compile(r"hash\(meta\.(\w+), HashAlgorithm\.(\w+), [^,]+,\s*\{([^}]*)\}")


def source_defaults(text: str | None = None) -> dict[str, int]:
    """The ``#ifndef`` defaults the program falls back on without ``-D`` defines."""
    text = P4_SOURCE.read_text() if text is None else text
    return {name: int(value, 0) for name, value in _DEFAULT.findall(text)}


def source_hashes(text: str | None = None) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each ``hash(meta.X, algorithm, base, {fields}, max)`` call: X -> (algorithm, field names)."""
    text = P4_SOURCE.read_text() if text is None else text
    found = {}
    for target, algorithm, fields in _HASH.findall(text):
        names = tuple(f.strip().removeprefix("meta.") for f in fields.split(","))
        found[target] = (algorithm, names)
    return found
