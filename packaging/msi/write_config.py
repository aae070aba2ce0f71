"""Write the MSI's public properties into the machine-wide clarion.toml (run by the
installer with the embedded Python; standard library only, so it runs before anything
else of Clarion is importable, and under wine).

    python.exe -I write_config.py C:\\ProgramData\\Clarion\\clarion.toml NAME=VALUE ...

An empty value leaves the key as the file has it, so an upgrade that is given no
properties keeps what the last install (or IT, by hand) set; every other key and table
in the file is kept. Lists are given comma-separated (WORKSTATION_LOCATIONS=ER,CLINIC).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

# MSI property -> (table, key, kind)
PROPERTIES = {
    "LISTENER_HOST": ("listener", "host", str),
    "LISTENER_PORT": ("listener", "port", int),
    "ALLOWED_SENDERS": ("listener", "allowed_senders", list),
    "DATABASE_URL": ("database", "url", str),
    "WORKSTATION_LOCATIONS": ("workstation", "locations", list),
    "WORKSTATION_PROVIDERS": ("workstation", "providers", list),
    "ADMINS": ("roles", "admins", list),
    "DATA_DIR": ("paths", "data_dir", str),
    "LOG_LEVEL": ("logging", "level", str),
    "LOCKED": (None, "locked", list),
}
HEADER = ("# Clarion: the machine-wide configuration, written by the installer from its\n"
          "# properties and kept across upgrades. Users' own files and CLARION_* variables\n"
          "# override it, except for the keys in `locked`. `clarion config` shows every\n"
          "# key's value and where it came from.\n")


def value(kind: type, text: str) -> object:
    if kind is int:
        return int(text)
    if kind is list:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def toml(item: object) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, (int, float)):
        return repr(item)
    if isinstance(item, list):
        return "[" + ", ".join(toml(v) for v in item) + "]"
    return '"' + str(item).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(data: dict[str, object]) -> str:
    out = [HEADER]
    for key, item in data.items():
        if not isinstance(item, dict):
            out.append(f"{key} = {toml(item)}")
    for table, items in data.items():
        if isinstance(items, dict):
            out.append(f"\n[{table}]")
            out += [f"{key} = {toml(item)}" for key, item in items.items()]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    data: dict[str, object] = {}
    if path.exists():
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    for pair in argv[1:]:
        name, _, text = pair.partition("=")
        if name not in PROPERTIES:
            print(f"write_config: unknown property {name!r}", file=sys.stderr)
            return 2
        if not text.strip():
            continue
        table, key, kind = PROPERTIES[name]
        try:
            parsed = value(kind, text.strip())
        except ValueError:
            print(f"write_config: {name}={text!r} is not a valid {kind.__name__}",
                  file=sys.stderr)
            return 2
        if table is None:
            data[key] = parsed
        else:
            section = data.setdefault(table, {})
            assert isinstance(section, dict)
            section[key] = parsed
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(data), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
