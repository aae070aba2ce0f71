"""STYLE.md's static checks, run with the suite so they stay clean: mypy with
`disallow_untyped_defs` over the shipped packages, and ruff's rule set (pyproject.toml)
over everything, tests and benchmarks included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)


def test_mypy_finds_no_type_errors() -> None:
    result = _run("mypy", "app", "engines", "ui", "integrations")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr
