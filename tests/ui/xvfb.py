"""A real X11 display for the tests that need one: Xvfb, started per test module.

Skipped with the reason where Xvfb is not installed (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest


def start_xvfb() -> Iterator[str]:
    """Start Xvfb on a free display number; yield its DISPLAY (":N"); stop it after."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb); real-display tests "
                    "need it")
    read, write = os.pipe()
    process = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        process.kill()
        pytest.skip("Xvfb did not start")
    try:
        yield f":{number}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def xvfb_display() -> Iterator[str]:
    yield from start_xvfb()
