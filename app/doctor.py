"""`clarion doctor`: the self-check IT runs after an install, one line per check.

Each check says ok, warn or FAIL with the words that explain it (and, where something
is wrong, what to do); the command exits non-zero if any check failed. Nothing here
changes anything: the store is not migrated, the port is bound only to see whether it
is free, and the adoption log is only read. No patient data is printed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.config import Config, ConfigError
from app.ingest.service import LISTENER_FILE

OK, WARN, FAIL = "ok", "warn", "FAIL"
GIB = 1024**3
DISK_FAIL_BYTES = GIB // 4  # below this the inbox can fill the disk within a day
DISK_WARN_BYTES = 2 * GIB


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok / warn / FAIL
    detail: str


def run_checks(load: Callable[[], Config], version: str,
               display: Callable[[], str | None] | None = None) -> list[Check]:
    """Every check, in the order IT reads them. `load` reads the configuration (its
    error is the first failure); `display` returns why no window can open, or None."""
    checks = [Check("version", OK, version)]
    try:
        config = load()
    except ConfigError as exc:
        checks.append(Check("config", FAIL, str(exc)))
        checks.append(Check("the rest", WARN, "not checked: fix the configuration first"))
        return checks
    checks += [check_config(config), check_role(config), check_data_dir(config),
               check_logs(config)]
    database, migrated = check_database(config)
    checks.append(database)
    if migrated and config.department.role != "standalone":
        checks.append(check_peers(config))
    if config.department.role != "workstation":  # a workstation does not listen
        checks.append(check_listener(config))
    checks.append(check_engines(config))
    if display is not None:
        problem = display()
        checks.append(Check("display", OK if problem is None else WARN,
                            "a window can open" if problem is None else
                            f"{problem} (clarion listen and clarion demo --headless need no "
                            "display)"))
    if migrated:  # a store not yet created is not created by looking at it
        checks.append(check_anomalies(config))
    return checks


def check_config(config: Config) -> Check:
    sources = config.sources
    read = ", ".join(str(p) for p in sources.files) or "no file (defaults)"
    problems = list(sources.refused)
    machine = sources.machine_file
    if machine.exists() and os.name == "posix" and os.geteuid() != 0 \
            and os.access(machine, os.W_OK):
        problems.append(f"{machine} is writable by this user; make it root-owned, mode 0644 "
                        "(chown root:root, chmod 644), so its locked keys mean something")
    overridden = sorted(k for k, v in sources.origin.items() if v.startswith("environment"))
    detail = f"valid; read {read}"
    if overridden:
        detail += f"; from the environment: {', '.join(overridden)}"
    if sources.locked:
        detail += f"; locked: {', '.join(sorted(sources.locked))}"
    if problems:
        return Check("config", WARN, detail + "; " + "; ".join(problems))
    return Check("config", OK, detail)


def check_role(config: Config) -> Check:
    """The part this installation plays in a department ([department] role)."""
    role = config.department.role
    shared = config.database_url.startswith("postgresql")
    if role == "standalone":
        return Check("role", OK, "standalone: listens, stores and shows banners here")
    if not shared:
        return Check("role", FAIL, f"{role}: a department's receiver and workstations share "
                     "one PostgreSQL store; set [database] url to it")
    if role == "receiver":
        return Check("role", OK, "receiver: listens and processes into the department's "
                     "store; workstations follow its change journal")
    return Check("role", OK, "workstation: does not listen; follows the department's "
                 "change journal and shows banners for patients routed here")


def check_peers(config: Config) -> Check:
    """A department's other half, as the database sees it: for a workstation, the role it
    connects as, its department (docs/department.md) and the journal's latest change it
    can see; for the receiver, the workstation roles and how many are connected now."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from app.store.db import make_engine

    engine = make_engine(config.database_url)
    try:
        with engine.connect() as conn:
            if config.department.role == "workstation":
                role, department = conn.execute(text(
                    "SELECT session_user, clarion_role_department()")).one()
                last = conn.scalar(text("SELECT max(processed_at) FROM patient_changes"))
                if department is None:
                    return Check("peers", WARN, f"connected as {role}, which is not a "
                                 "department's workstation role: it reads every patient; "
                                 f"run `clarion department add-workstation {role} "
                                 "--department ...` (docs/department.md)")
                seen = f"latest change it can see: {last:%Y-%m-%d %H:%M} UTC" if last \
                    else "no change in its journal yet"
                return Check("peers", OK, f"connected as {role}, a workstation of "
                             f"{department}; {seen}")
            roles, connected = conn.execute(text(
                "SELECT count(*), count(*) FILTER (WHERE role_name IN "
                "(SELECT usename FROM pg_stat_activity)) FROM clarion_db_roles")).one()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return Check("peers", WARN, f"the department's roles cannot be read: {reason}")
    finally:
        engine.dispose()
    if not roles:
        return Check("peers", WARN, "no workstation roles in this store: workstations "
                     "connecting as the owner read every patient; see `clarion department "
                     "init` (docs/department.md)")
    return Check("peers", OK, f"{roles} workstation role(s), {connected} connected now")


def check_data_dir(config: Config) -> Check:
    folder = config.data_dir
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    if not os.access(existing, os.W_OK):
        return Check("data directory", FAIL, f"{folder}: {existing} is not writable by this "
                     "user; set [paths] data_dir or fix its owner")
    free = shutil.disk_usage(existing).free
    where = f"{folder}{'' if folder.exists() else ' (created on first start)'}"
    words = f"{where}; {free / GIB:.1f} GiB free"
    if free < DISK_FAIL_BYTES:
        return Check("data directory", FAIL, f"{words}; free at least {DISK_WARN_BYTES // GIB}"
                     " GiB: the inbox keeps every message received")
    if free < DISK_WARN_BYTES:
        return Check("data directory", WARN, f"{words}; below {DISK_WARN_BYTES // GIB} GiB")
    return Check("data directory", OK, words)


def check_logs(config: Config) -> Check:
    path = config.log_file
    if path is None:
        return Check("logs", OK, "to the journal (journalctl -u clarion-listener)")
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    if not os.access(existing, os.W_OK):
        return Check("logs", FAIL, f"{path}: not writable by this user; set [logging] file "
                     "or fix the folder's owner")
    return Check("logs", OK, f"{path} (rotated at 10 MiB, 5 kept)")


def check_database(config: Config) -> tuple[Check, bool]:
    """The store: reachable, and migrated to what this version needs (True if so)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from app.store.db import MIGRATIONS, make_engine

    url = make_url(config.database_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database and \
            not Path(url.database).exists():
        return Check("database", OK, f"{shown}: not created yet (created and migrated on "
                     "first start)"), False
    try:
        engine = make_engine(config.database_url)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        return Check("database", FAIL, f"{shown}: {exc}"), False
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            server = conn.dialect.server_version_info
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return Check("database", FAIL, f"{shown}: cannot connect: {reason}; check "
                     "[database] url, the server and the network"), False
    finally:
        engine.dispose()
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    version = ".".join(str(v) for v in server or ())
    where = f"{shown} ({url.get_backend_name()} {version})"
    if current == head:
        return Check("database", OK, f"{where}: migrated (revision {head})"), True
    if current is None:
        return Check("database", WARN, f"{where}: empty; Clarion creates its tables on first "
                     "start"), False
    return Check("database", WARN, f"{where}: at revision {current}, this version needs "
                 f"{head}; migrated on the next start"), False


def check_listener(config: Config) -> Check:
    host, port = config.listener.host, config.listener.port
    if port == 0:
        return Check("listener", OK, f"{host}: a free port is chosen at start ([listener] "
                     "port = 0)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        if sys.platform != "win32":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES, 10048, 10013):
                return Check("listener", FAIL, f"{host}:{port}: cannot bind: {exc.strerror}; "
                             "check [listener] host")
            holder = running_listener(config)
            if holder is not None and holder.get("port") == port:
                return Check("listener", OK, f"{host}:{port}: held by Clarion (pid "
                             f"{holder['pid']}), answering the feed")
            if exc.errno in (errno.EACCES, 10013):
                return Check("listener", FAIL, f"{host}:{port}: this user may not bind it "
                             "(ports below 1024 need privileges); choose [listener] port "
                             "above 1024")
            return Check("listener", FAIL, f"{host}:{port}: held by another program; stop it "
                         "or choose another [listener] port")
    return Check("listener", OK, f"{host}:{port}: free (Clarion listens here when it runs)")


def running_listener(config: Config) -> dict[str, Any] | None:
    """The listener this data directory's Clarion announced, if its process lives."""
    try:
        holder = json.loads((config.data_dir / LISTENER_FILE).read_text(encoding="utf-8"))
        pid = int(holder["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid):
        return None
    return dict(holder)


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it there
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # type: ignore[attr-defined]
        if handle:
            ctypes.windll.kernel32.CloseHandle(handle)  # type: ignore[attr-defined]
        return bool(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's (the service's)
        return True
    return True


def check_engines(config: Config) -> Check:
    from engines.card import load_card
    from engines.select import select_engine

    try:
        card = load_card("t2d")
        selection = select_engine(card, config.data_dir / "engines")
    except Exception as exc:  # a broken model install is exactly what doctor is for
        return Check("engines", FAIL, f"the T2D model cannot be loaded: {exc}")
    others = "; ".join(f"{c.name}: {'yes' if c.usable else 'no'} ({c.reason})"
                       for c in selection.candidates if c.name != selection.engine.name)
    selection.engine.close()
    return Check("engines", OK, f"{card.id} {card.version} on {selection.summary()}"
                 + (f"; {others}" if others else ""))


def check_anomalies(config: Config) -> Check:
    from sqlalchemy.exc import SQLAlchemyError

    from app.adoption import anomaly
    from app.store.db import make_engine

    engine = make_engine(config.database_url)
    try:
        found = anomaly.check(engine, days=1, warn=False)
    except SQLAlchemyError as exc:
        return Check("firing", WARN, f"the adoption log cannot be read: {type(exc).__name__}")
    finally:
        engine.dispose()
    if not found:
        return Check("firing", OK, "yesterday's messages, scores and alerts as on the same "
                     "weekdays before (or too little history to judge)")
    return Check("firing", WARN, "; ".join(a.words for a in found))


def render(checks: list[Check], as_json: bool) -> str:
    if as_json:
        return json.dumps({"ok": all(c.status != FAIL for c in checks),
                           "checks": [asdict(c) for c in checks]}, indent=2)
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{c.status:4s}  {c.name:{width}s}  {c.detail}" for c in checks)
