"""The Windows installer, tested by reading its tables and by installing it under wine:
built once per run (the current version, signed with a throwaway certificate, and the
next one, for the upgrade); then, in a fresh wine prefix, a silent install with
properties, the files, registry and configuration they leave, an upgrade that keeps the
properties (and takes a new one), and an uninstall. The embedded Python then runs
Clarion's receiving layer under wine and answers a real HL7 message with AA.

Skipped, with the reason, where wixl, msitools, osslsigncode or wine are missing
(.ci/run installs them). What wine 8 cannot run is said in packaging/README.md: the
compiled wheels (numpy, ONNX Runtime, Qt, pydantic-core) do not load, and SQLAlchemy's
import asks WMI, which wine lacks; so the app itself, the store and the service are not
run here, only installed and registered."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import load_config
from integrations.mllp import MllpClient
from tests.packaging.shell import sh

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "packaging" / "msi" / "build.py"
INSTALL = Path("drive_c/Program Files/Clarion")
CONFIG = Path("drive_c/ProgramData/Clarion/clarion.toml")

pytestmark = [pytest.mark.slow, pytest.mark.packaging, pytest.mark.timeout(1800)]


def _why_not() -> str | None:
    for tool, package in (("wixl", "wixl"), ("msiinfo", "msitools"),
                          ("osslsigncode", "osslsigncode"), ("wine", "wine"),
                          ("openssl", "openssl")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package}; .ci/run does)"
    return None


WHY_NOT = _why_not()
if WHY_NOT:
    pytestmark.append(pytest.mark.skip(reason=WHY_NOT))


def _versions() -> tuple[str, str]:
    current = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    major, minor, patch = (int(x) for x in current.split("."))
    return current, f"{major}.{minor}.{patch + 1}"


@pytest.fixture(scope="module")
def msis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("msis")
    cert, key = out / "test-cert.pem", out / "test-key.pem"
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
       "-subj", "/CN=Clarion Test Signing", "-keyout", key, "-out", cert)
    current, following = _versions()
    built = {}
    for name, version, signing in (("current", current, ["--cert", cert, "--key", key]),
                                   ("next", following, [])):
        started = time.monotonic()
        done = sh(sys.executable, BUILD, "--version", version, "--out", out, *signing)
        built[name] = out / f"clarion-{version}-x64.msi"
        print(f"{done.stdout.strip()} (test: {time.monotonic() - started:.0f} s)")
        assert ("signed" if signing else "UNSIGNED") in done.stdout
    return built


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    prefix = tmp_path_factory.mktemp("wine") / "prefix"
    env = {**os.environ, "WINEPREFIX": str(prefix), "WINEDEBUG": "-all",
           "WINEDLLOVERRIDES": "mscoree,mshtml="}  # no Mono or Gecko prompts
    sh("wineboot", "--init", env=env, timeout=600)
    # One persistent wineserver for the module. Left to itself, it exits a few seconds
    # after the last wine process; a `wine msiexec` started in that window found no
    # msiexec.exe ("ShellExecuteEx failed: Internal error", seen in CI). Its output goes
    # to /dev/null: the daemon would hold captured pipes open, and the run never end.
    sh("wineserver", "-w", env=env, timeout=300)
    subprocess.run(["wineserver", "-p"], env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                   check=True)
    yield env
    sh("wineserver", "-k", env=env, check=False)


def install(wine: dict[str, str], *args: str) -> None:
    """A silent msiexec on the module's wineserver."""
    sh("wine", "msiexec", *args, "/qn", env=wine)


def table(msi: Path, name: str) -> list[list[str]]:
    lines = sh("msiinfo", "export", msi, name).stdout.splitlines()[3:]
    return [line.split("\t") for line in lines]


def test_the_msi_says_what_it_is(msis: dict[str, Path]) -> None:
    msi = msis["current"]
    props = dict(row[:2] for row in table(msi, "Property"))
    assert props["UpgradeCode"] == "{6B1C0E5D-2F7A-4C38-9A61-3E0B8C7D4F21}"
    assert props["ProductVersion"] == _versions()[0] and props["ALLUSERS"] == "1"
    next_props = dict(row[:2] for row in table(msis["next"], "Property"))
    assert next_props["UpgradeCode"] == props["UpgradeCode"]  # the same product, upgraded
    assert next_props["ProductCode"] != props["ProductCode"]
    assert any(row[0] == props["UpgradeCode"] for row in table(msi, "Upgrade"))
    shortcuts = table(msi, "Shortcut")
    assert [r[1:3] for r in shortcuts] == [["ProgramMenuFolder", "Clarion"]]
    service = table(msi, "ServiceInstall")[0]
    assert service[1] == "ClarionListener" and service[4] == "3"  # demand start
    registry = {(r[2], r[3]) for r in table(msi, "Registry")}
    assert ("Software\\Microsoft\\Windows\\CurrentVersion\\Run", "Clarion") in registry
    assert ("Software\\Classes\\clarion", "URL Protocol") in registry
    for prop in ("LISTENER_PORT", "DATABASE_URL", "WORKSTATION_LOCATIONS", "LOCKED"):
        assert ("Software\\Clarion\\Install", prop) in registry  # remembered for upgrades
    actions = {r[0] for r in table(msi, "CustomAction")}
    assert {"CA.WriteConfig", "CA.StartService", "CA.Restore.LISTENER_PORT"} <= actions
    # signed with the throwaway certificate, the MSI and the programs in it; the other
    # build is not
    signed = sh("osslsigncode", "verify", "-in", msi, check=False)
    assert "CN=Clarion Test Signing" in signed.stdout + signed.stderr
    unpacked = msi.parent / "unpacked"
    sh("msiextract", "-C", unpacked, msi)
    for exe in ("Clarion.exe", "clarion-cli.exe"):
        found = next(unpacked.rglob(exe))
        inner = sh("osslsigncode", "verify", "-in", found, check=False)
        assert "CN=Clarion Test Signing" in inner.stdout + inner.stderr, exe
    unsigned = sh("osslsigncode", "verify", "-in", msis["next"], check=False)
    assert "MSI file has no signature" in unsigned.stdout + unsigned.stderr


def test_silent_install_upgrade_and_uninstall_under_wine(msis: dict[str, Path],
                                                         wine: dict[str, str]) -> None:
    prefix = Path(wine["WINEPREFIX"])

    def msiexec(*args: str) -> None:
        install(wine, *args)

    def reg(key: str) -> str:
        return sh("wine", "reg", "query", key, env=wine, check=False).stdout.replace("\r", "")

    msiexec("/i", str(msis["current"]), "LISTENER_PORT=2576", "WORKSTATION_LOCATIONS=ER,CLINIC",
            "DATABASE_URL=postgresql+psycopg://clarion@db.example/clarion",
            'LOCKED=database.url')
    for name in ("Clarion.exe", "clarion-cli.exe", "python/python.exe",
                 "python/pythonservice.exe", "python/Lib/site-packages/app/cli.py",
                 "python/Lib/site-packages/app/winservice.py"):
        assert (prefix / INSTALL / name).is_file(), name
    config_file = prefix / CONFIG
    written = tomllib.loads(config_file.read_text())
    assert written["listener"]["port"] == 2576
    assert written["workstation"]["locations"] == ["ER", "CLINIC"]
    assert written["locked"] == ["database.url"]
    # and Clarion reads it as its machine file, the lock included
    config = load_config(machine_path=config_file, environ={
        "CLARION_DATABASE__URL": "sqlite:///elsewhere.db", "CLARION_CONFIG": str(config_file)})
    assert config.database.url == "postgresql+psycopg://clarion@db.example/clarion"
    assert config.sources.refused and config.listener.port == 2576
    assert "2576" in reg("HKLM\\Software\\Clarion\\Install")
    assert "Clarion.exe" in reg("HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run")
    assert '"%1"' in reg("HKLM\\Software\\Classes\\clarion\\shell\\open\\command")
    service = reg("HKLM\\System\\CurrentControlSet\\Services\\ClarionListener")
    assert "pythonservice.exe" in service and "0x3" in service  # installed, not started
    assert "app.winservice.ListenerService" in reg(
        "HKLM\\System\\CurrentControlSet\\Services\\ClarionListener\\PythonClass")

    # upgrade: nothing given keeps every property; one given replaces it
    msiexec("/i", str(msis["next"]), "LISTENER_PORT=2600")
    written = tomllib.loads(config_file.read_text())
    assert written["listener"]["port"] == 2600
    assert written["database"]["url"] == "postgresql+psycopg://clarion@db.example/clarion"
    assert written["workstation"]["locations"] == ["ER", "CLINIC"]
    products = sh("wine", "reg", "query",
                  "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall", "/s",
                  env=wine).stdout.replace("\r", "")
    versions = [line.split()[-1] for line in products.splitlines() if "DisplayVersion" in line]
    assert versions.count(_versions()[1]) == 1 and _versions()[0] not in versions  # replaced

    # uninstall: the program, its registry and its service go; the machine file stays
    msiexec("/x", str(msis["next"]))
    assert not [p for p in (prefix / INSTALL).rglob("*") if p.is_file()]
    assert "Unable to find" in reg("HKLM\\Software\\Clarion\\Install")
    assert "ClarionListener" not in reg("HKLM\\System\\CurrentControlSet\\Services")
    assert config_file.is_file()


def test_the_embedded_python_answers_hl7_under_wine(msis: dict[str, Path],
                                                    wine: dict[str, str],
                                                    tmp_path: Path) -> None:
    """As far as wine 8 goes: the MSI's own CPython runs Clarion's MLLP server and
    receipt checks (pure Python) and answers a real message over a real socket."""
    prefix = Path(wine["WINEPREFIX"])
    install(wine, "/i", str(msis["current"]))
    port = 31000 + os.getpid() % 20000
    script = tmp_path / "answer.py"
    script.write_text(
        "import asyncio, sys\n"
        "from integrations.mllp import MllpServer\n"
        "from integrations.hl7.receipt import assess\n"
        "from integrations.hl7.acks import build_ack\n"
        "async def handle(raw, peer):\n"
        "    a = assess(raw)\n"
        "    return build_ack(a.header, a.outcome, a.errors, control_id=a.control_id).encode()\n"
        "async def main():\n"
        f"    server = MllpServer(handle, '127.0.0.1', {port})\n"
        "    await server.start()\n"
        "    print('ready', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n")
    python = prefix / INSTALL / "python" / "python.exe"
    # Pipes (CPython under wine cannot start on a regular file), never read to their end
    # (wine's services may hold them open: shell.py).
    process = subprocess.Popen(["wine", str(python), "-B", str(script)], env=wine,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        said = []
        for line in process.stdout:
            said.append(line)
            if line.strip() == "ready":
                break
        assert said and said[-1].strip() == "ready", "".join(said)[-3000:]
        with MllpClient("127.0.0.1", port) as client:
            ack = client.send(b"MSH|^~\\&|LAB|H|CLARION|W|20261203120000||ORU^R01|WINE1|P|2.5\r"
                              b"PID|1||SYN900002^^^H^MR||Synthetic^Wine||19700101|F\r"
                              b"OBR|1||O1|4548-4\r"
                              b"OBX|1|NM|4548-4^HbA1c^LN||6.1|%|||||F|||20261203110000\r")
        assert b"MSA|AA|WINE1" in ack
    finally:
        process.kill()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
        sh("wine", "msiexec", "/x", str(msis["current"]), "/qn", env=wine, check=False)
