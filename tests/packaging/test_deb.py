"""The Debian package, tested by installing it: built once per run (two versions, for the
upgrade), then `dpkg -i` on this machine as root, the installed commands, the listener
under the service's own user answering an HL7 message with AA, an upgrade that keeps
the store and an edited conffile, `dpkg -r` and `--purge` — and the machine left as it
was. Also what the package says of itself (`dpkg-deb`), and lintian.

Skipped, with the reason, where this is not a Debian machine run as root with the tools
(.ci/run installs them). What cannot run here: systemd is not PID 1 in CI, so the unit
is checked with `systemd-analyze verify` and its command is run as the unit would run it
(same user, same environment), not started by systemd."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integrations.mllp import MllpClient
from tests.packaging.shell import sh

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "packaging" / "deb" / "build.py"
CLARION = Path("/usr/bin/clarion")
STORE = Path("/var/lib/clarion")

pytestmark = [pytest.mark.slow, pytest.mark.packaging, pytest.mark.timeout(1800)]


def _why_not() -> str | None:
    if sys.platform != "linux" or shutil.which("dpkg") is None:
        return "not a Debian system (no dpkg)"
    if os.geteuid() != 0:
        return "installing a package needs root (CI runs as root)"
    for tool in ("dpkg-deb", "dpkg-shlibdeps", "lintian", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs it)"
    if subprocess.run(["dpkg", "-s", "clarion"], capture_output=True).returncode == 0:
        return "a clarion package is already installed on this machine; not touching it"
    return None


WHY_NOT = _why_not()
if WHY_NOT:
    pytestmark.append(pytest.mark.skip(reason=WHY_NOT))


def clean_env(**extra: str) -> dict[str, str]:
    """What a shell on the installed machine has: no test settings, no venv."""
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "LANG", "LC_ALL", "TERM") or k.startswith("CLARION_TEST")}
    keep["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return {**keep, **extra}


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The package at this tree's version and at an earlier one (Xrc1, which the
    package numbers X~rc1 and dpkg orders before X), built once for the module."""
    out = tmp_path_factory.mktemp("debs")
    version = _project_version()
    built = {}
    for name, v in (("previous", f"{version}rc1"), ("current", version)):
        started = time.monotonic()
        sh(sys.executable, BUILD, "--version", v, "--out", out, timeout=1200)
        built[name] = out / f"clarion_{v.replace('rc1', '~rc1')}_amd64.deb"
        print(f"built {built[name].name}: {built[name].stat().st_size / 1e6:.1f} MB in "
              f"{time.monotonic() - started:.0f} s")
    return built


def _project_version() -> str:
    import tomllib

    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


@pytest.fixture(scope="module")
def leave_no_trace() -> Iterator[None]:
    """Whatever happens, the machine ends as it began: no package, user or folders."""
    yield
    sh("dpkg", "--purge", "clarion", check=False)
    shutil.rmtree(STORE, ignore_errors=True)
    shutil.rmtree("/etc/clarion", ignore_errors=True)
    if subprocess.run(["getent", "passwd", "clarion"], capture_output=True).returncode == 0:
        sh("deluser", "--quiet", "--system", "clarion", check=False)
        sh("delgroup", "--quiet", "--system", "clarion", check=False)


def test_the_package_says_what_it_is(debs: dict[str, Path]) -> None:
    info = sh("dpkg-deb", "--info", debs["current"]).stdout
    depends = next(line for line in info.splitlines() if line.strip().startswith("Depends:"))
    # computed by dpkg-shlibdeps from the Qt xcb plugin and the other ELF files
    for library in ("libxcb-cursor0", "libxkbcommon-x11-0", "libc6", "python3 (>= 3.11)"):
        assert library in depends, depends
    assert "conffiles" in info
    contents = sh("dpkg-deb", "--contents", debs["current"]).stdout
    for path in ("./opt/clarion/venv/bin/clarion", "./usr/bin/clarion",
                 "./etc/clarion/clarion.toml", "./lib/systemd/system/clarion-listener.service",
                 "./usr/share/applications/clarion.desktop", "./etc/xdg/autostart/clarion.desktop",
                 "./usr/share/doc/clarion/copyright"):
        assert path in contents, path
    assert "__pycache__" not in contents  # compiled on the machine, by postinst
    assert "Recommends: libwayland-client0" in info  # the Wayland plugins' libraries


def test_lintian_reports_nothing_unexplained(debs: dict[str, Path]) -> None:
    done = sh("lintian", "--fail-on", "error,warning", debs["current"], check=False)
    problems = [line for line in done.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert not problems and done.returncode == 0, done.stdout + done.stderr


def test_install_run_upgrade_remove_purge(debs: dict[str, Path], leave_no_trace: None,
                                          tmp_path: Path) -> None:
    # install
    sh("dpkg", "-i", debs["previous"])
    assert sh("getent", "passwd", "clarion").stdout.split(":")[6].strip() in (
        "/usr/sbin/nologin", "/bin/false")
    assert STORE.is_dir() and STORE.owner() == "clarion"
    version = sh(CLARION, "--version", env=clean_env()).stdout
    assert version.startswith(f"clarion {_project_version()}rc1 (Python 3.11"), version
    assert any(Path("/opt/clarion/venv/lib").rglob("__pycache__"))  # postinst compiled it
    # systemd's own parser on the installed unit (it names unknown keys and commands
    # that are not there; systemd itself is not running in CI)
    verify = sh("systemd-analyze", "verify", "/lib/systemd/system/clarion-listener.service",
                check=False).stderr
    for problem in ("Unknown key", "Unknown section", "not executable", "Failed to parse",
                    "Invalid", "bad-setting"):
        assert problem not in verify, verify

    # the installed commands, as a user of the machine would run them
    home = tmp_path / "home"
    home.mkdir()
    user_env = clean_env(HOME=str(home))
    doctor = sh(CLARION, "doctor", env=user_env, check=False)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "/etc/clarion/clarion.toml" in doctor.stdout and "onnxruntime-cpu" in doctor.stdout
    demo = sh(CLARION, "demo", "--headless", env=user_env, timeout=600)
    assert "banner" in (demo.stdout + demo.stderr).lower()

    # the listener as the service runs it: its user, its environment, SIGTERM to stop
    port = 30000 + os.getpid() % 20000
    listener = subprocess.Popen(  # setpriv execs it: SIGTERM reaches Clarion itself
        ["setpriv", "--reuid=clarion", "--regid=clarion", "--init-groups", "env",
         "CLARION_PATHS__DATA_DIR=/var/lib/clarion", "/opt/clarion/venv/bin/clarion",
         "listen", "--port", str(port)],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not Path(STORE / "listener.json").exists():
            time.sleep(0.2)
        with MllpClient("127.0.0.1", port) as client:
            ack = client.send(b"MSH|^~\\&|LAB|H|CLARION|W|20261203120000||ORU^R01|DEB1|P|2.5\r"
                              b"PID|1||SYN900001^^^H^MR||Synthetic^Deb||19700101|F\r"
                              b"OBR|1||O1|4548-4\r"
                              b"OBX|1|NM|4548-4^HbA1c^LN||6.1|%|||||F|||20261203110000\r")
        assert b"MSA|AA|DEB1" in ack
    finally:
        listener.send_signal(signal.SIGTERM)
        out, err = listener.communicate(timeout=60)
    assert listener.returncode == 0, err
    assert (STORE / "clarion.db").owner() == "clarion"

    # an admin edits the machine file; the upgrade keeps it, and the store
    conffile = Path("/etc/clarion/clarion.toml")
    conffile.write_text(conffile.read_text() + "\n# edited by IT\n")
    sh("dpkg", "-i", "--force-confdef", "--force-confold", debs["current"])
    assert "# edited by IT" in conffile.read_text()
    with sqlite3.connect(STORE / "clarion.db") as db:
        assert db.execute("SELECT count(*) FROM inbox_messages WHERE control_id = 'DEB1'"
                          ).fetchone()[0] == 1
    assert sh(CLARION, "--version", env=clean_env()).stdout.startswith(
        f"clarion {_project_version()} ")

    # remove: the program goes, the conffile stays; purge: it goes, the store stays
    sh("dpkg", "-r", "clarion")
    assert not Path("/opt/clarion").exists() and not CLARION.exists()
    assert conffile.exists()
    purge = sh("dpkg", "--purge", "clarion")
    assert not Path("/etc/clarion").exists()
    assert (STORE / "clarion.db").exists() and "kept the patient store" in purge.stderr
