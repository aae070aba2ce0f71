"""Clarion's one configuration schema.

Read from one TOML file (the platform's config directory, or `--config PATH`, or
`CLARION_CONFIG`), then overridden by environment variables named
`CLARION_<SECTION>__<KEY>` (e.g. `CLARION_LISTENER__PORT=2576`). The installers write the
same file. A wrong key or value is a `ConfigError` that names the key and says what to do.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

APP_NAME = "clarion"
ENV_PREFIX = "CLARION_"
ENV_CONFIG_PATH = "CLARION_CONFIG"
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
    worker: Literal["process", "thread"] = Field(
        "process", description="Where messages are processed: 'process' (a worker process "
        "at lower CPU priority, so receipt and ACKs keep a core to themselves) or 'thread'")

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


class RolesConfig(_Section):
    """Who may do what beyond a clinician's work."""

    admins: list[str] = Field(default_factory=list, description="OS user names that may open "
                              "the adoption dashboard from the tray and the main window")


class LoggingConfig(_Section):
    """Log output. Logs never carry names, MRNs or results."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: str = Field("", description="Log file; empty means <data_dir>/logs/clarion.log")


class PathsConfig(_Section):
    """Where Clarion keeps its files."""

    data_dir: str = Field("", description="Data directory; empty means the platform default")


class Config(_Section):
    """The whole configuration file."""

    listener: ListenerConfig = Field(default_factory=ListenerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    workstation: WorkstationConfig = Field(default_factory=WorkstationConfig)
    roles: RolesConfig = Field(default_factory=RolesConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.paths.data_dir or platformdirs.user_data_dir(APP_NAME, appauthor=False))

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'clarion.db'}"


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "clarion.toml"


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
        where = origin.get(key, source)
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


def load_config(path: Path | str | None = None,
                environ: dict[str, str] | None = None) -> Config:
    """Load the file (if it exists), apply environment overrides, validate."""
    environ = dict(os.environ if environ is None else environ)
    explicit = path is not None or ENV_CONFIG_PATH in environ
    config_path = Path(path or environ.get(ENV_CONFIG_PATH) or default_config_path())
    data: dict[str, Any] = {}
    if config_path.exists():
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_path}: not valid TOML: {exc}; fix the syntax "
                              "(see README, 'Configuration')") from exc
    elif explicit:
        raise ConfigError(f"{config_path}: configuration file not found; check the path "
                          f"given by --config or {ENV_CONFIG_PATH}")
    overrides, origin = _env_overrides(environ)
    for section, values in overrides.items():
        target = data.setdefault(section, {})
        if isinstance(target, dict):
            target.update(values)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, str(config_path), origin) from None


def render_default_config() -> str:
    """The default configuration as commented TOML, for installers and `clarion config`."""
    out = ["# Clarion configuration. Every key is optional; shown are the defaults.",
           f"# Environment variables {ENV_PREFIX}<SECTION>__<KEY> override this file.", ""]
    defaults = Config()
    for section_name, section_field in Config.model_fields.items():
        section = getattr(defaults, section_name)
        doc = (section_field.annotation.__doc__ or "").strip() if section_field.annotation else ""
        out += [f"[{section_name}]", f"# {doc}"] if doc else [f"[{section_name}]"]
        for key, field in type(section).model_fields.items():
            value = getattr(section, key)
            if field.description:
                out.append(f"# {field.description}")
            out.append(f"{key} = {_toml_value(value)}")
        out.append("")
    return "\n".join(out)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
