"""One typed configuration: file, environment, and errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from app.cli import main
from app.config import ConfigError, load_config, render_default_config


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(environ={"CLARION_PATHS__DATA_DIR": str(tmp_path)})
    assert config.listener.host == "127.0.0.1" and config.listener.port == 2575
    assert config.listener.max_message_bytes == 16 * 1024 * 1024
    assert config.database_url == f"sqlite:///{tmp_path / 'clarion.db'}"


def test_file_then_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "clarion.toml"
    path.write_text('[listener]\nport = 3000\nhost = "0.0.0.0"\n'
                    'allowed_senders = ["10.1.0.0/16"]\n')
    config = load_config(path, environ={"CLARION_LISTENER__PORT": "3001",
                                        "CLARION_LISTENER__ALLOWED_SENDERS": "10.2.0.1, 10.3.0.0/24",
                                        "CLARION_TEST_POSTGRES_URL": "ignored: no section"})
    assert config.listener.port == 3001 and config.listener.host == "0.0.0.0"
    assert config.listener.allowed_senders == ["10.2.0.1", "10.3.0.0/24"]


def test_unknown_key_is_named_with_the_valid_ones(tmp_path: Path) -> None:
    path = tmp_path / "clarion.toml"
    path.write_text("[listener]\nprot = 3000\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert "unknown key 'listener.prot'" in message and "port" in message
    assert str(path) in message


def test_bad_value_names_key_value_and_meaning(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None,
                    environ={"CLARION_LISTENER__PORT": "eighty"})
    message = str(info.value)
    assert "CLARION_LISTENER__PORT" in message and "'listener.port' = 'eighty'" in message
    assert "TCP port" in message


def test_bad_network_and_zone_are_explained(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[listener]\nallowed_senders = ["10.0.0.300"]\n'
                    '[ingest]\nfeed_timezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "10.0.0.300" in str(info.value) and "Mars/Olympus" in str(info.value)


def test_invalid_toml_and_missing_explicit_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[listener\nport=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", environ={})


def test_default_file_round_trips(tmp_path: Path) -> None:
    text = render_default_config()
    tomllib.loads(text)
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert load_config(path, environ={}).listener.port == 2575


def test_cli_reports_config_errors_with_exit_2(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[database]\nurl = 5\n")
    assert main(["inbox", "--config", str(path)]) == 2
    assert "'database.url' = 5" in capsys.readouterr().err
