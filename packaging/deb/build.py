"""Build Clarion's Debian package from this repository.

    python3 packaging/deb/build.py [--version X.Y.Z] [--out dist/]

What it makes: `clarion_<version>_amd64.deb` holding a self-contained virtual
environment in /opt/clarion/venv on the system's python3 (Debian 12: 3.11), with the
dependency versions and hashes of `packaging/deb/requirements.lock` (re-lock with
`python3 packaging/lock.py deb`); `/usr/bin/clarion`; the machine-wide configuration
`/etc/clarion/clarion.toml` as a conffile; the `clarion-listener` systemd unit (installed,
not enabled); a desktop entry that also registers the `clarion://` links; an autostart
entry; and maintainer scripts that create the service user and folders. `Depends` is
computed by dpkg-shlibdeps from the ELF files inside (the Qt xcb plugin brings the
libxcb-* a stock desktop lacks), not written by hand.

Needs: Debian's python3 and python3-venv (the venv links to /usr/bin/python3), dpkg-dev
(dpkg-shlibdeps), and the network to PyPI (wheels are fetched at build time, never at
run time). `--version` builds the same tree under another (PEP 440) version number; the
upgrade test builds two.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from email.utils import formatdate
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # packaging/common.py
from common import project_version, source_tree  # noqa: E402

PYTHON = Path("/usr/bin/python3")
PREFIX = Path("/opt/clarion")
VENV = PREFIX / "venv"
MAINTAINER = "Clarion team <clarion@example.org>"
TOOLS = {"dpkg-deb": "dpkg", "dpkg-shlibdeps": "dpkg-dev", "git": "git"}
SITE = "lib/python3.*/site-packages"
# What a Qt Widgets app never loads, left out of the package: QML and Quick's files,
# Qt's developer tools and their plugins, the SQL drivers (Clarion's database is reached
# through SQLAlchemy), the GTK theme plugin (it would pull GTK in; Qt falls back to its
# own look), the Wayland compositor (server) side, the embedded-device platforms (EGLFS,
# linuxfb, VNC), and the plugins whose libraries only PySide6-Addons has (the virtual
# keyboard, PDF images: in Essentials they could never load).
PRUNE = [f"{SITE}/PySide6/{name}" for name in (
    "Qt/qml", "Qt/metatypes", "Qt/libexec", "Qt/plugins/designer", "Qt/plugins/qmltooling",
    "Qt/plugins/qmllint", "Qt/plugins/sqldrivers", "Qt/plugins/platformthemes/libqgtk3.so",
    "Qt/plugins/wayland-graphics-integration-server", "Qt/lib/libQt6WaylandCompositor*",
    "Qt/lib/libQt6WaylandEglCompositorHwIntegration*", "Qt/lib/libQt6Designer*",
    "assistant", "designer", "linguist", "lrelease", "lupdate", "qmlformat", "qmllint",
    "qmlls", "svgtoqml", "include", "typesystems", "glue", "doc", "QtDesigner.abi3.so",
    "Qt/plugins/egldeviceintegrations", "Qt/plugins/platforms/libqeglfs.so",
    "Qt/plugins/platforms/libqminimalegl.so", "Qt/plugins/platforms/libqlinuxfb.so",
    "Qt/plugins/platforms/libqvnc.so", "Qt/lib/libQt6EglFS*", "Qt/lib/libQt6EglFs*",
    "Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so",
    "Qt/plugins/imageformats/libqpdf.so")] + [
    # joblib (neurokit2 -> scikit-learn) ships its own test suite, with deliberately
    # broken .gz files among its fixtures; nothing imports it.
    f"{SITE}/joblib/test"]
# Loaded only in a Wayland session (Qt falls back to X11 through XWayland without them):
# their libraries are recommended, not required.
OPTIONAL = [f"{SITE}/PySide6/Qt/{name}" for name in (
    "plugins/platforms/libqwayland*", "plugins/wayland-*/*", "lib/libQt6WaylandClient*",
    "lib/libQt6WlShellIntegration*")]


def run(*command: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], check=True, text=True,
                          **kwargs)  # type: ignore[call-overload]


def check_tools() -> None:
    missing = [package for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if not PYTHON.exists():
        missing.append("python3")
    elif subprocess.run([PYTHON, "-c", "import venv, ensurepip"],
                        capture_output=True).returncode:
        missing.append("python3-venv")
    if missing:
        sys.exit(f"build.py: missing {', '.join(sorted(set(missing)))}; install with\n"
                 f"    sudo apt-get install {' '.join(sorted(set(missing)))}")


def deb_version(version: str) -> str:
    """The package's version for a Python (PEP 440) one: a pre-release sorts first in
    both (0.2.0rc1 becomes 0.2.0~rc1, which dpkg orders before 0.2.0)."""
    return re.sub(r"(\d)\.?(a|b|rc|dev)(\d*)$", r"\1~\2\3", version)


def build_venv(stage: Path, src: Path, wheels: Path) -> Path:
    venv = stage / VENV.relative_to("/")
    run(PYTHON, "-m", "venv", venv)
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "--quiet"]
    run(*pip, "install", "--no-compile", "--no-deps", "--require-hashes", "--only-binary=:all:",
        "-r", HERE / "requirements.lock")
    run(*pip, "wheel", "--no-deps", "--wheel-dir", wheels, src)
    run(*pip, "install", "--no-compile", "--no-deps", *sorted(wheels.glob("clarion-*.whl")))
    # pip and setuptools stay out of the installed app: nothing installs into it later.
    run(*pip, "uninstall", "--yes", "pip", "setuptools", capture_output=True)
    for cache in venv.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    # The venv was made at the staging path: point it at where it will be installed.
    for path in [*(venv / "bin").iterdir(), venv / "pyvenv.cfg"]:
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if str(venv).encode() in data:
                path.write_bytes(data.replace(str(venv).encode(), str(VENV).encode()))
    for script in (venv / "bin").glob("Activate.ps1"):
        script.unlink()
    for pattern in PRUNE:
        for path in venv.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    # The dependencies' own commands (pyside6-designer, ttx, ...) are not Clarion's.
    for path in (venv / "bin").iterdir():
        if not path.name.startswith(("clarion", "python", "activate")):
            path.unlink()
    return venv


def fix_modes(stage: Path) -> None:
    """No group- or world-writable files; only programs executable: ELF executables and
    scripts with a #! line (wheels mark some data and library files executable)."""
    for path in stage.rglob("*"):
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & ~0o022
        if path.is_file() and mode & 0o111:
            with path.open("rb") as handle:
                head = handle.read(4)
            is_program = head[:2] == b"#!" or (head == b"\x7fELF" and ".so" not in path.name)
            if not is_program and "DEBIAN" not in path.parts:
                mode &= ~0o111
        path.chmod(mode)


def elf_files(root: Path) -> list[Path]:
    out = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and (".so" in path.name or
                                                         os.access(path, os.X_OK)):
            with path.open("rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    out.append(path)
    return out


def shlib_depends(stage: Path) -> tuple[str, str]:
    """`Depends` and `Recommends`, from dpkg-shlibdeps over every ELF file (the Wayland
    plugins' libraries recommended). The libraries the package carries itself (Qt in
    PySide6, ONNX Runtime's) are found inside it and need no dependency."""
    venv = stage / VENV.relative_to("/")
    elves = elf_files(stage)
    optional = {p for pattern in OPTIONAL for p in venv.glob(pattern)}
    private = sorted({str(p.parent) for p in elves if ".so" in p.name})
    (stage / "DEBIAN").mkdir(exist_ok=True)  # how dpkg-shlibdeps finds the package root
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "debian").mkdir()
        (Path(scratch) / "debian" / "control").write_text(
            "Source: clarion\n\nPackage: clarion\nArchitecture: amd64\n")
        done = subprocess.run(
            ["dpkg-shlibdeps", "-O", "--ignore-missing-info", "--warnings=1", f"-S{stage}",
             *(f"-l{d}" for d in private),
             *(f"-e{p}" for p in elves if p not in optional),
             "-dRecommends", *(f"-e{p}" for p in sorted(optional))],
            cwd=scratch, capture_output=True, text=True)
    if done.returncode:
        missing = sorted(set(re.findall(r"cannot find library (\S+)", done.stderr)))
        hint = (f"\nthe build machine lacks {', '.join(missing)}; install the packages that "
                "hold them (apt-file search NAME) and build again") if missing else ""
        sys.exit(f"build.py: dpkg-shlibdeps failed:\n{done.stderr[-3000:]}{hint}")
    fields = dict(re.findall(r"shlibs:(\w+)=(.*)", done.stdout))
    return fields.get("Depends", "").strip(), fields.get("Recommends", "").strip()


def write_tree(stage: Path, version: str) -> None:
    def put(path: str, text: str | bytes, mode: int = 0o644) -> None:
        target = stage / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)
        target.chmod(mode)

    (stage / "usr/bin").mkdir(parents=True, exist_ok=True)
    (stage / "usr/bin/clarion").symlink_to(VENV / "bin" / "clarion")
    python = stage / VENV.relative_to("/") / "bin" / "python"  # the app just installed
    machine = run(python, "-c", "from app.config import render_default_config; "
                  "print(render_default_config(machine=True))", capture_output=True).stdout
    put("/etc/clarion/clarion.toml", machine)
    put("/lib/systemd/system/clarion-listener.service",
        (HERE / "clarion-listener.service").read_text())
    put("/usr/share/applications/clarion.desktop", (HERE / "clarion.desktop").read_text())
    put("/etc/xdg/autostart/clarion.desktop", (HERE / "clarion-autostart.desktop").read_text())
    doc = "/usr/share/doc/clarion"
    put(f"{doc}/copyright", (HERE / "copyright").read_text())
    put("/usr/share/man/man1/clarion.1.gz",
        gzip.compress((HERE / "clarion.1").read_bytes(), mtime=0))
    put(f"{doc}/README.packaging.md", (ROOT / "packaging" / "README.md").read_text())
    changelog = (f"clarion ({deb_version(version)}) stable; urgency=medium\n\n"
                 f"  * Release {version}; see the project's history.\n\n"
                 f" -- {MAINTAINER}  {formatdate(0)}\n")
    put(f"{doc}/changelog.gz", gzip.compress(changelog.encode(), mtime=0))
    put("/usr/share/lintian/overrides/clarion", (HERE / "lintian-overrides").read_text())


def control(stage: Path, version: str, depends: str, recommends: str) -> None:
    debian = stage / "DEBIAN"
    debian.mkdir(exist_ok=True)
    size_kib = sum(p.stat().st_size for p in stage.rglob("*")
                   if p.is_file() and not p.is_symlink()) // 1024
    # The venv is built for this python3 minor version: its wheels are cp311.
    minor = run(PYTHON, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')",
                capture_output=True).stdout.strip()
    major, low = minor.split(".")
    requires = [f"python3 (>= {minor})", f"python3 (<< {major}.{int(low) + 1})", "adduser"]
    fields = {
        "Package": "clarion", "Version": version, "Architecture": "amd64",
        "Maintainer": MAINTAINER, "Installed-Size": str(size_kib),
        "Depends": ", ".join([*requires, *filter(None, [depends])]),
        **({"Recommends": recommends} if recommends else {}),
        "Section": "science", "Priority": "optional", "Homepage": "https://example.org/clarion",
        "Description": "point-of-care risk alerts from the hospital's HL7 v2 feed\n"
                       " Clarion listens for HL7 v2 ADT and ORU messages, keeps each patient's "
                       "history,\n scores the open patient with risk models and shows a banner "
                       "with the risk and\n the screenings to order. This package holds the "
                       "desktop app, the command line\n and the clarion-listener service "
                       "(a department's receiver).",
    }
    (debian / "control").write_text("".join(f"{k}: {v}\n" for k, v in fields.items()))
    (debian / "conffiles").write_text("/etc/clarion/clarion.toml\n"
                                      "/etc/xdg/autostart/clarion.desktop\n")
    for script in ("postinst", "prerm", "postrm"):
        shutil.copy2(HERE / script, debian / script)
        (debian / script).chmod(0o755)
    sums = []
    for path in sorted(stage.rglob("*")):
        if path.is_file() and not path.is_symlink() and "DEBIAN" not in path.parts \
                and not str(path.relative_to(stage)).startswith("etc/"):
            sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  "  # noqa: S324
                        f"{path.relative_to(stage)}")
    (debian / "md5sums").write_text("\n".join(sums) + "\n")


def build(version: str, out: Path) -> Path:
    check_tools()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clarion-deb-") as scratch:
        work = Path(scratch)
        stage = work / "root"
        src = source_tree(work / "src", version)
        build_venv(stage, src, work / "wheels")
        write_tree(stage, version)
        depends, recommends = shlib_depends(stage)
        control(stage, deb_version(version), depends, recommends)
        fix_modes(stage)
        deb = out / f"clarion_{deb_version(version)}_amd64.deb"
        run("dpkg-deb", "--root-owner-group", "-Zxz", "-z1", "--build", stage, deb,
            capture_output=True)
    print(f"built {deb} ({deb.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - started:.0f} s")
    print(f"Depends (dpkg-shlibdeps): {depends}")
    print(f"Recommends (dpkg-shlibdeps, the Wayland plugins): {recommends}")
    return deb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default=project_version())
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    args = parser.parse_args()
    build(args.version, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
