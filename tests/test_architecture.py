"""The layer boundaries of DESIGN.md, enforced by import-linter (contracts in pyproject.toml):
no Qt in app/, engines/, integrations/; ui over app over engines | integrations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exit_code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True,
                                 no_logo=True)
    finally:
        os.chdir(cwd)
    output = capsys.readouterr().out
    assert exit_code == 0, output
    assert "Contracts: 3 kept, 0 broken" in output
