"""Start, or say why not: before Qt starts, Clarion checks that a window can open, and
otherwise names what is missing instead of letting Qt abort the process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.ui.xvfb import xvfb_display  # noqa: F401 - a fixture
from ui.display import check_display, requested_platforms

CLARION = Path(sys.executable).with_name("clarion")
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")


def test_offscreen_needs_nothing() -> None:
    assert check_display({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert requested_platforms({"QT_QPA_PLATFORM": "wayland;xcb"}) == ["wayland", "xcb"]


@pytest.mark.skipif(sys.platform != "linux", reason="the xcb platform is Linux's")
def test_an_x_display_that_does_not_answer_is_named() -> None:
    problem = check_display({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":4321"})
    assert problem is not None
    assert "':4321' does not answer" in problem.message()
    assert "clarion demo --headless" in problem.message()


@pytest.mark.skipif(sys.platform != "linux", reason="the xcb platform is Linux's")
def test_a_real_display_passes(xvfb_display: str) -> None:  # noqa: F811
    assert check_display({"DISPLAY": xvfb_display}) is None


def _can_hide_libraries() -> str:
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("unshare") is None:
        return "hiding a system library needs root and unshare (a private mount namespace)"
    if not (LIBDIR / "libxcb-cursor.so.0").exists():
        return "libxcb-cursor.so.0 is not installed here, so there is nothing to hide"
    return ""


def test_the_real_command_names_the_hidden_library(xvfb_display: str) -> None:  # noqa: F811
    """`clarion demo` on a real display, with libxcb-cursor.so.0 hidden from the dynamic
    loader (an overlay of the library folder in a private mount namespace, which
    whites it out): Qt alone would abort with "could not load the Qt platform plugin
    xcb"; Clarion says which library is missing and how to install it, and exits 3."""
    reason = _can_hide_libraries()
    if reason:
        pytest.skip(reason)
    if not CLARION.exists():
        pytest.skip(f"the clarion command is not installed beside {sys.executable}")
    with tempfile.TemporaryDirectory() as work:
        for name in ("upper", "work", "merged"):
            os.mkdir(os.path.join(work, name))
        script = (
            f"mount -t overlay overlay -o lowerdir={LIBDIR},upperdir={work}/upper,"
            f"workdir={work}/work {work}/merged || exit 97; "
            f"rm {work}/merged/libxcb-cursor.so.0*; mount --bind {work}/merged {LIBDIR}; "
            f'exec "{CLARION}" demo')
        env = {k: v for k, v in os.environ.items()
               if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
        env["DISPLAY"] = xvfb_display
        done = subprocess.run(["unshare", "--mount", "sh", "-c", script], env=env,
                              capture_output=True, text=True, timeout=120)
    if done.returncode == 97:
        pytest.skip(f"an overlay mount is not allowed here: {done.stderr.strip()}")
    assert done.returncode == 3, done.stderr
    assert "libxcb-cursor.so.0" in done.stderr
    assert "apt-get install libxcb-cursor0" in done.stderr
    assert "clarion demo --headless" in done.stderr and "clarion listen" in done.stderr
    assert "This application failed to start" not in done.stderr  # Qt never got there
