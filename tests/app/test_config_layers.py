"""The configuration's layers: defaults < machine file < user file < environment <
command line; keys the machine file locks; and `clarion config` saying, key by key,
where each value came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.config import ConfigError, load_config


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    machine = tmp_path / "etc" / "clarion.toml"
    machine.parent.mkdir()
    machine.write_text('[listener]\nport = 2600\nhost = "0.0.0.0"\nmax_connections = 10\n'
                       '[workstation]\nlocations = ["ER"]\n'
                       f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    user = tmp_path / "user.toml"
    user.write_text("[listener]\nport = 2700\nmax_connections = 20\n")
    return machine, user


def test_each_layer_overrides_the_one_below(files: tuple[Path, Path]) -> None:
    machine, user = files
    config = load_config(user, machine_path=machine,
                         environ={"CLARION_LISTENER__MAX_CONNECTIONS": "30",
                                  "CLARION_LISTENER__PORT": "2800"},
                         command_line={"listener": {"port": 2900}})
    assert config.listener.host == "0.0.0.0"  # machine only
    assert config.workstation.locations == ["ER"]
    assert config.listener.max_connections == 30  # environment over user over machine
    assert config.listener.port == 2900  # command line over everything
    sources = config.sources
    assert sources.files == [machine, user]
    assert sources.of("listener.host") == f"machine file {machine}"
    assert sources.of("listener.max_connections") == \
        "environment variable CLARION_LISTENER__MAX_CONNECTIONS"
    assert sources.of("listener.port") == "command line"
    assert sources.of("alerts.suppress_days") == "default"
    without_env = load_config(user, machine_path=machine, environ={})
    assert without_env.listener.port == 2700
    assert without_env.sources.of("listener.port") == f"user file {user}"


def test_locked_keys_keep_the_machine_files_value(files: tuple[Path, Path]) -> None:
    machine, user = files
    machine.write_text('locked = ["listener.port", "database.url"]\n' + machine.read_text()
                       + '[database]\nurl = "sqlite:////var/lib/clarion/clarion.db"\n')
    user.write_text('[listener]\nport = 2700\n[database]\nurl = "sqlite:///mine.db"\n')
    config = load_config(user, machine_path=machine,
                         environ={"CLARION_LISTENER__PORT": "2800"},
                         command_line={"database": {"url": "sqlite:///other.db"}})
    assert config.listener.port == 2600
    assert config.database.url == "sqlite:////var/lib/clarion/clarion.db"
    assert config.sources.locked == {"listener.port", "database.url"}
    refused = config.sources.refused
    assert len(refused) == 4
    assert any("listener.port is locked" in r and "CLARION_LISTENER__PORT" in r for r in refused)
    assert any("database.url is locked" in r and "command line" in r for r in refused)


def test_lock_mistakes_are_named(files: tuple[Path, Path]) -> None:
    machine, user = files
    machine.write_text('locked = ["listener.prot"]\n')
    with pytest.raises(ConfigError, match=r"'locked' names unknown key 'listener.prot'"):
        load_config(user, machine_path=machine, environ={})
    machine.write_text('locked = "listener.port"\n')
    with pytest.raises(ConfigError, match=r"locked = \[\"database.url\"\]"):
        load_config(user, machine_path=machine, environ={})
    machine.write_text("")
    user.write_text('locked = ["listener.port"]\n')
    with pytest.raises(ConfigError, match="belongs in the machine-wide file"):
        load_config(user, machine_path=machine, environ={})


def test_a_bad_machine_value_names_the_machine_file(files: tuple[Path, Path]) -> None:
    machine, user = files
    machine.write_text("[listener]\nport = 99999\n")
    with pytest.raises(ConfigError) as caught:
        load_config(machine_path=machine, environ={})
    assert f"machine file {machine}: 'listener.port' = 99999 is invalid" in str(caught.value)


def test_clarion_config_prints_every_key_and_its_source(
        files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    machine, user = files
    machine.write_text('locked = ["listener.host"]\n' + machine.read_text())
    monkeypatch.setenv("CLARION_MACHINE_CONFIG", str(machine))
    monkeypatch.setenv("CLARION_LISTENER__HOST", "10.0.0.1")
    monkeypatch.setenv("CLARION_ALERTS__SUPPRESS_DAYS", "7")
    assert main(["config", "--config", str(user), "--db",
                 "postgresql+psycopg://clarion:secret@db.example/clarion"]) == 0
    out, err = capsys.readouterr()
    lines = {line.split(" = ")[0].strip(): line for line in out.splitlines() if " = " in line}
    assert f"machine file:   {machine} (read)" in out and f"user file:      {user} (read)" in out
    assert "machine file" in lines["listener.host"] and "[locked]" in lines["listener.host"]
    assert '"0.0.0.0"' in lines["listener.host"]
    assert "listener.host is locked" in err and "CLARION_LISTENER__HOST" in err
    assert "environment variable CLARION_ALERTS__SUPPRESS_DAYS" in lines["alerts.suppress_days"]
    assert f"user file {user}" in lines["listener.port"] and "2700" in lines["listener.port"]
    assert "command line" in lines["database.url"]
    assert "secret" not in out and "***" in lines["database.url"]
    assert "default" in lines["logging.level"]
    assert len(lines) >= 30  # every key, not only those set
