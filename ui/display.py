"""Can a window open here? Asked before the QApplication exists, without Qt.

When Qt cannot load its platform plugin it prints its own message and aborts the
process: nothing of Clarion's runs to say why. So, before Qt starts, this module finds out
with the dynamic loader what Qt would find out the hard way — whether the platform
plugin's libraries load and whether the display answers — and returns a sentence that
names the missing library and the command that installs it.

Only the Linux desktop platforms are checked (xcb, wayland); Windows and macOS ship
their platform plugins' dependencies with the system, and offscreen/minimal need none.
`application()`, which every window's entry point calls, starts Qt only once this passes.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The system libraries Qt's xcb plugin needs that a stock desktop may lack, with the
# Debian/Ubuntu package of each (DESIGN.md: "On a stock Debian desktop ...").
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}
WAYLAND_LIBRARIES = {"libwayland-client.so.0": "libwayland-client0",
                     "libwayland-cursor.so.0": "libwayland-cursor0",
                     "libxkbcommon.so.0": "libxkbcommon0"}
NO_DISPLAY_NEEDED = ("`clarion listen` (the receiver) and `clarion demo --headless` need "
                     "no display.")


@dataclass(frozen=True, slots=True)
class DisplayProblem:
    """Why no window can open, in words for the person who started Clarion."""

    platform: str
    reason: str
    missing: tuple[str, ...] = ()  # library file names
    packages: tuple[str, ...] = ()  # Debian/Ubuntu packages that bring them

    def message(self) -> str:
        lines = [f"clarion: cannot open a window ({self.platform}): {self.reason}."]
        if self.packages:
            lines.append("Install the missing system libraries, e.g. on Debian or Ubuntu:\n"
                         f"    sudo apt-get install {' '.join(self.packages)}")
        lines.append(NO_DISPLAY_NEEDED)
        return "\n".join(lines)


def display_problem() -> str | None:
    """Why no window can open, in one line (for `clarion doctor`), or None."""
    problem = check_display()
    if problem is None:
        return None
    install = f"; install: sudo apt-get install {' '.join(problem.packages)}" \
        if problem.packages else ""
    return f"cannot open a window ({problem.platform}): {problem.reason}{install}"


def requested_platforms(environ: dict[str, str] | os._Environ[str] = os.environ) -> list[str]:
    """The platform plugins Qt will try, in order (QT_QPA_PLATFORM may list fallbacks)."""
    if environ.get("QT_QPA_PLATFORM"):
        return [p.split(":")[0].strip() for p in environ["QT_QPA_PLATFORM"].split(";")
                if p.strip()]
    if sys.platform != "linux":
        return ["native"]
    # Qt 6 on Linux prefers Wayland in a Wayland session and falls back to xcb.
    if environ.get("WAYLAND_DISPLAY") and environ.get("XDG_SESSION_TYPE") == "wayland":
        return ["wayland", "xcb"]
    return ["xcb"]


def check_display(environ: dict[str, str] | os._Environ[str] = os.environ
                  ) -> DisplayProblem | None:
    """None if Qt can open a window with one of the platforms it will try; else the
    problem with the first of them (the one a user expects)."""
    problems = []
    for platform in requested_platforms(environ):
        if platform == "xcb":
            problem = _check_xcb(environ)
        elif platform.startswith("wayland"):
            problem = _check_wayland(environ)
        else:  # offscreen, minimal, the native ones: nothing to load from the system
            problem = None
        if problem is None:
            return None
        problems.append(problem)
    return problems[0]


def _missing(libraries: dict[str, str]) -> tuple[list[str], list[str], str]:
    missing, packages, detail = [], [], ""
    for name, package in libraries.items():
        try:
            ctypes.CDLL(name)
        except OSError as exc:
            missing.append(name)
            packages.append(package)
            detail = detail or str(exc)
    return missing, packages, detail


def _plugin(name: str) -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "Qt" / "plugins" / \
        "platforms" / name
    return path if path.exists() else None


def _libraries_missing(platform: str, plugin: str,
                       libraries: dict[str, str]) -> DisplayProblem | None:
    missing, packages, _ = _missing(libraries)
    if not missing:
        return None
    return DisplayProblem(platform, f"Qt's {plugin} platform plugin needs "
                          f"{', '.join(missing)}, which is not installed",
                          tuple(missing), tuple(packages))


def _check_xcb(environ: dict[str, str] | os._Environ[str]) -> DisplayProblem | None:
    problem = _libraries_missing("xcb", "X11 (xcb)", XCB_LIBRARIES)
    if problem is not None:
        return problem
    plugin = _plugin("libqxcb.so")
    if plugin is not None:
        try:  # anything else its loader would miss, in the loader's own words
            ctypes.CDLL(str(plugin))
        except OSError as exc:
            return DisplayProblem("xcb", f"Qt's X11 plugin does not load: {exc}")
    display = environ.get("DISPLAY", "")
    if not display:
        return DisplayProblem("xcb", "no X11 display (DISPLAY is not set)")
    xcb = ctypes.CDLL("libxcb.so.1")
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)
    try:
        if xcb.xcb_connection_has_error(connection):
            return DisplayProblem("xcb", f"the X11 display {display!r} does not answer "
                                  "(is the X server running, and may this user use it?)")
    finally:
        xcb.xcb_disconnect(connection)
    return None


def _check_wayland(environ: dict[str, str] | os._Environ[str]) -> DisplayProblem | None:
    problem = _libraries_missing("wayland", "Wayland", WAYLAND_LIBRARIES)
    if problem is not None:
        return problem
    name = environ.get("WAYLAND_DISPLAY", "")
    if not name:
        return DisplayProblem("wayland", "no Wayland display (WAYLAND_DISPLAY is not set)")
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    socket = Path(name) if os.path.isabs(name) else Path(runtime) / name
    if not socket.exists():
        return DisplayProblem("wayland", f"the Wayland display socket {socket} does not exist")
    return None


def application() -> Any:
    """The running QApplication, or a new one once `check_display` passes; None, with the
    problem printed to stderr, where Qt would abort the process instead (callers exit 3)."""
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    if existing is None:
        problem = check_display()
        if problem is not None:
            print(problem.message(), file=sys.stderr)
            return None
    return existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
