"""Clarion's one configuration schema, read in layers.

From lowest to highest precedence: the defaults; the machine-wide file the installers
write (`/etc/clarion/clarion.toml` on Linux, `%ProgramData%\\Clarion\\clarion.toml` on
Windows); the user's file (the platform's config directory, or `--config PATH`, or
`CLARION_CONFIG`); environment variables named `CLARION_<SECTION>__<KEY>` (e.g.
`CLARION_LISTENER__PORT=2576`); the command line (`--db`, `--port`, ...). The machine
file may lock keys (`locked = ["database.url"]`, before its first table): a locked key
keeps the machine file's value whatever a user's file, environment or command line says,
and the override is reported, not applied. `clarion config` prints every key with its
value and where it came from. A wrong key or value is a `ConfigError` that names the
key, the file or variable it came from, and what to do.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

APP_NAME = "clarion"
ENV_PREFIX = "CLARION_"
ENV_CONFIG_PATH = "CLARION_CONFIG"
# Where the machine-wide file is, for tests and unusual layouts. Not a security boundary:
# locking keeps honest users from changing what IT set, it does not stop a determined one.
ENV_MACHINE_CONFIG = "CLARION_MACHINE_CONFIG"
MIB = 1024 * 1024


class ConfigError(ValueError):
    """A configuration problem, phrased for the person who has to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ListenerConfig(_Section):
    """The MLLP listener that receives the hospital feed."""

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 exposes it to the network")
    port: int = Field(2575, ge=0, le=65535,
                      description="TCP port (2575 is HL7's registered port; 0 picks a free one)")
    max_message_bytes: int = Field(16 * MIB, ge=1024, description="Largest frame accepted")
    idle_timeout_s: float = Field(300.0, gt=0, description="Close a connection silent this long")
    max_connections: int = Field(64, ge=1, description="Concurrent connections accepted")
    allowed_senders: list[str] = Field(
        default_factory=list, description="Sender IPs or networks (CIDR); empty allows any")
    tls_cert: str = Field("", description="Server certificate (PEM); set with tls_key for TLS")
    tls_key: str = Field("", description="Private key of tls_cert (PEM)")
    tls_client_ca: str = Field(
        "", description="CA bundle (PEM); when set, senders must present a certificate it signed")
    processing_ids: list[str] = Field(
        default_factory=lambda: ["P", "T"],
        description="MSH-11 processing IDs accepted (P production, T training, D debugging)")
    shutdown_grace_s: float = Field(5.0, ge=0, description="Time to finish in-flight frames")

    @field_validator("allowed_senders")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from exc
        return value


class DatabaseConfig(_Section):
    """Where the patient store lives."""

    url: str = Field("", description="SQLAlchemy URL; empty means SQLite in the data directory")


class IngestConfig(_Section):
    """Processing of received messages into the patient store."""

    max_attempts: int = Field(3, ge=1, description="Tries before a message is quarantined")
    retry_backoff_s: float = Field(2.0, ge=0, description="First retry delay; doubles each try")
    feed_timezone: str = Field(
        "local", description="Zone for HL7 times sent without an offset (IANA name or 'local')")
    journal_days: float = Field(7.0, gt=0, description="Days the change journal keeps (a "
                                "department's workstations follow it; one offline longer "
                                "re-reads its open patients)")
    worker: Literal["process", "thread"] = Field(
        "process", description="Where messages are processed: 'process' (a worker process "
        "at lower CPU priority, so receipt and ACKs keep a core to themselves) or 'thread'")
    workers: int = Field(
        0, ge=0, le=16, description="Worker processes (worker = 'process'); 0: 2 on "
        "PostgreSQL, 1 on SQLite. Each takes the patients of its share of the inbox's 16 "
        "shards, so a patient's messages stay in order; more than one pays on PostgreSQL, "
        "whose server works beside them; SQLite writes one transaction at a time")

    @field_validator("feed_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value != "local":
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}; use an IANA name such as "
                                 "'Europe/Berlin', or 'local'") from exc
        return value


class AlertsConfig(_Section):
    """When a risk becomes a banner."""

    suppress_days: float = Field(30.0, ge=0, description="Do not show the same model and "
                                 "patient again within this many days ...")
    rise_margin: float = Field(0.10, ge=0, le=1, description="... unless the risk rose by at "
                               "least this much (absolute, 0-1)")
    max_per_hour: int = Field(6, ge=1, description="Banners per clinician per hour at most")
    expire_after_s: float = Field(180.0, gt=0, description="An untouched banner expires")
    dwell_view_s: float = Field(4.0, gt=0, description="A banner kept on screen this long "
                                "with the window active counts as viewed")


class WorkstationConfig(_Section):
    """Who and where this is, and which patients open here (ADT routing)."""

    name: str = Field("", description="Workstation name in the adoption log; empty: host name")
    clinician: str = Field("", description="Clinician in the log; empty: the OS user")
    department: str = Field("", description="Department in the log")
    locations: list[str] = Field(default_factory=list, description="PV1-3 point-of-care "
                                 "units routed here (e.g. ['ER', 'CLINIC'])")
    providers: list[str] = Field(default_factory=list, description="PV1-7/PV1-17 provider "
                                 "ids routed here")


class DepartmentConfig(_Section):
    """This installation's part in a department deployment (DESIGN.md)."""

    role: Literal["standalone", "receiver", "workstation"] = Field(
        "standalone", description="'standalone': listens, stores and shows banners (one "
        "workstation); 'receiver': listens and processes into the department's PostgreSQL "
        "store, shows nothing; 'workstation': does not listen, follows the store's change "
        "journal and shows banners")


class RolesConfig(_Section):
    """Who may do what beyond a clinician's work."""

    admins: list[str] = Field(default_factory=list, description="OS user names that may open "
                              "the adoption dashboard from the tray and the main window")


class LoggingConfig(_Section):
    """Log output. Logs never carry names, MRNs or results."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: str = Field("", description="Log file (rotated at 10 MiB, 5 kept); empty means "
                      "<data_dir>/logs/clarion.log, or the journal under systemd")


class PathsConfig(_Section):
    """Where Clarion keeps its files."""

    data_dir: str = Field("", description="Data directory; empty means the platform default")


@dataclass
class Sources:
    """Where a loaded configuration came from, key by key ("section.key")."""

    machine_file: Path
    user_file: Path
    # the files that existed and were read, machine first
    files: list[Path] = dataclasses.field(default_factory=list)
    # "section.key" -> "user file /x.toml", "environment variable ...", "command line"
    origin: dict[str, str] = dataclasses.field(default_factory=dict)
    locked: set[str] = dataclasses.field(default_factory=set)
    # the overrides of locked keys that were not applied, in words
    refused: list[str] = dataclasses.field(default_factory=list)

    def of(self, key: str) -> str:
        return self.origin.get(key, "default")


class Config(_Section):
    """The whole configuration file."""

    _sources: Sources | None = PrivateAttr(default=None)

    listener: ListenerConfig = Field(default_factory=ListenerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    workstation: WorkstationConfig = Field(default_factory=WorkstationConfig)
    department: DepartmentConfig = Field(default_factory=DepartmentConfig)
    roles: RolesConfig = Field(default_factory=RolesConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.paths.data_dir or platformdirs.user_data_dir(APP_NAME, appauthor=False))

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'clarion.db'}"

    @property
    def log_file(self) -> Path | None:
        """Where this process logs besides stderr: the configured file; nothing when
        systemd hands stderr to the journal (JOURNAL_STREAM, as for the listener
        service); otherwise <data_dir>/logs/clarion.log."""
        if self.logging.file:
            return Path(self.logging.file)
        if os.environ.get("JOURNAL_STREAM"):
            return None
        return self.data_dir / "logs" / "clarion.log"

    @property
    def sources(self) -> Sources:
        """Where each value came from (a configuration built in code: all defaults)."""
        if self._sources is None:
            self._sources = Sources(machine_config_path(), default_config_path())
        return self._sources


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "clarion.toml"


PLATFORM_MACHINE_CONFIG = (
    Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "Clarion" / "clarion.toml"
    if sys.platform == "win32" else Path("/etc/clarion/clarion.toml"))


def machine_config_path(environ: dict[str, str] | None = None) -> Path:
    """The machine-wide file the installers write."""
    environ = dict(os.environ if environ is None else environ)
    if environ.get(ENV_MACHINE_CONFIG):
        return Path(environ[ENV_MACHINE_CONFIG])
    return PLATFORM_MACHINE_CONFIG


def keys() -> list[str]:
    """Every key, as "section.key"."""
    out = []
    for section_name, section_field in Config.model_fields.items():
        model = section_field.annotation
        if model is not None:
            out += [f"{section_name}.{key}" for key in model.model_fields]
    return out


def _env_overrides(environ: dict[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """CLARION_SECTION__KEY variables as a nested dict, and where each came from."""
    nested: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        raw: Any = value
        if key in ("allowed_senders", "processing_ids", "locations", "providers"):
            raw = [v.strip() for v in value.split(",") if v.strip()]
        nested.setdefault(section, {})[key] = raw
        origin[f"{section}.{key}"] = f"environment variable {name}"
    return nested, origin


def _explain(exc: ValidationError, source: str, origin: dict[str, str]) -> ConfigError:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        where = origin.get(key) or next(
            (v for k, v in origin.items() if k.startswith(f"{key}.")), source)
        section = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            if len(err["loc"]) == 1:
                valid = ", ".join(sorted(Config.model_fields))
                fix = f"valid sections are: {valid}"
            else:
                model = Config.model_fields[section].annotation
                valid = ", ".join(sorted(model.model_fields)) if model else ""
                fix = f"valid keys in [{section}] are: {valid}"
            lines.append(f"{where}: unknown key '{key}'; remove it or fix its spelling ({fix})")
        else:
            fix = ""
            if len(err["loc"]) == 2:
                model = Config.model_fields[section].annotation
                field = model.model_fields.get(str(err["loc"][1])) if model else None
                if field and field.description:
                    fix = f" ('{key}' is: {field.description})"
            lines.append(f"{where}: '{key}' = {err.get('input')!r} is invalid: {err['msg']}{fix}")
    return ConfigError("configuration error:\n  " + "\n  ".join(lines))


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}; fix the syntax "
                          "(see README, 'Configuration')") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: the {what} cannot be read: {exc.strerror}; check its "
                          "permissions (it should be readable by every user)") from exc
    return data


def _locked(data: dict[str, Any], path: Path) -> set[str]:
    """The machine file's `locked` list, checked against the schema."""
    value = data.pop("locked", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: 'locked' = {value!r} is invalid: it lists keys as "
                          '"section.key" strings, e.g. locked = ["database.url"]')
    known = set(keys())
    for key in value:
        if key not in known:
            raise ConfigError(f"{path}: 'locked' names unknown key {key!r}; lockable keys "
                              f"are section.key, e.g. {', '.join(sorted(known)[:4])}, ...")
    return set(value)


def _layer(data: dict[str, Any], values: dict[str, Any], where: str, sources: Sources,
           overridable: bool) -> None:
    """Lay `values` (section -> key -> value) over `data`, recording where each came
    from; a locked key is left as the machine file set it and the attempt recorded."""
    for section, entries in values.items():
        if not isinstance(entries, dict):  # a value outside any [section]: let the schema say
            data[section] = entries
            sources.origin[section] = where
            continue
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            continue
        for key, value in entries.items():
            name = f"{section}.{key}"
            if overridable and name in sources.locked:
                sources.refused.append(f"{name} is locked by {sources.machine_file}; the "
                                       f"value from {where} is ignored")
                continue
            target[key] = value
            sources.origin[name] = where


def load_config(path: Path | str | None = None,
                environ: dict[str, str] | None = None,
                command_line: dict[str, dict[str, Any]] | None = None,
                machine_path: Path | str | None = None) -> Config:
    """Load the layers (machine file, user file, environment, command line), validate."""
    environ = dict(os.environ if environ is None else environ)
    explicit = path is not None or ENV_CONFIG_PATH in environ
    user_path = Path(path or environ.get(ENV_CONFIG_PATH) or default_config_path())
    machine = Path(machine_path) if machine_path else machine_config_path(environ)
    sources = Sources(machine, user_path)
    data: dict[str, Any] = {}
    if machine.exists():
        machine_data = _read_toml(machine, "machine-wide configuration")
        sources.locked = _locked(machine_data, machine)
        sources.files.append(machine)
        _layer(data, machine_data, f"machine file {machine}", sources, overridable=False)
    if user_path.exists() and user_path != machine:
        user_data = _read_toml(user_path, "configuration file")
        if "locked" in user_data:
            raise ConfigError(f"{user_path}: 'locked' belongs in the machine-wide file "
                              f"({machine}); remove it here")
        sources.files.append(user_path)
        _layer(data, user_data, f"user file {user_path}", sources, overridable=True)
    elif explicit and not user_path.exists():
        raise ConfigError(f"{user_path}: configuration file not found; check the path "
                          f"given by --config or {ENV_CONFIG_PATH}")
    overrides, env_origin = _env_overrides(environ)
    for section, values in overrides.items():
        for key, value in values.items():
            _layer(data, {section: {key: value}}, env_origin[f"{section}.{key}"], sources,
                   overridable=True)
    for section, values in (command_line or {}).items():
        for key, value in values.items():
            _layer(data, {section: {key: value}}, "command line", sources, overridable=True)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, str(user_path), sources.origin) from None
    config._sources = sources
    return config


def render_default_config(machine: bool = False) -> str:
    """The default configuration as commented TOML, for installers and `clarion config`.
    `machine`: the machine-wide file the installers write, every key commented out (a
    key set there is the default for every user on the machine), with `locked`."""
    if machine:
        out = ["# Clarion: the machine-wide configuration (every user, and the listener",
               "# service). Uncomment a key to set it for the machine; users' own files,",
               f"# {ENV_PREFIX}<SECTION>__<KEY> variables and options override it, except",
               "# for the keys listed in `locked`, which keep this file's value.",
               "# `clarion config` shows every key's value and where it came from.", "",
               '# locked = ["database.url", "listener.port"]', ""]
    else:
        out = ["# Clarion configuration. Every key is optional; shown are the defaults.",
               f"# Environment variables {ENV_PREFIX}<SECTION>__<KEY> override this file.", ""]
    defaults = Config()
    for section_name, section_field in Config.model_fields.items():
        section = getattr(defaults, section_name)
        doc = (section_field.annotation.__doc__ or "").strip() if section_field.annotation else ""
        out += [f"[{section_name}]", f"# {doc}"] if doc else [f"[{section_name}]"]
        for key, info in type(section).model_fields.items():
            value = getattr(section, key)
            if info.description:
                out.append(f"# {info.description}")
            out.append(f"{'# ' if machine else ''}{key} = {toml_value(value)}")
        out.append("")
    return "\n".join(out)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
