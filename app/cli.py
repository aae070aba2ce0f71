"""The `clarion` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import ssl
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app import logs
from app.config import (
    Config,
    ConfigError,
    keys,
    load_config,
    render_default_config,
    toml_value,
)
from app.store.db import open_store
from app.store.models import InboxMessage, InboxStatus
from app.store.patients import find_by_identifier, timeline

if TYPE_CHECKING:
    from app.clinic.scoring import Score
    from app.ecg.analysis import EcgAnalyzer

_MESSAGE_START = re.compile(rb"(?m)^(?=(?:\xef\xbb\xbf)?MSH)")

# The desktop app's runner, handed in by ui.launcher (the core never imports ui):
# run(config, launch arguments, demo) -> exit code.
GuiRunner = Callable[[Config, list[str], bool], int]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="configuration file (TOML)")
    parser.add_argument("--db", metavar="URL", help="database URL (overrides database.url)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clarion", description="Point-of-care risk alerts from the HL7 v2 feed.")
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("listen", help="receive HL7 over MLLP (headless)")
    _common(p)
    p.add_argument("--host", help="address to bind (default from config: 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default from config: 2575)")

    p = sub.add_parser("send", help="send HL7 files over MLLP and print each ACK code")
    _common(p)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--to", required=True, metavar="HOST:PORT")
    p.add_argument("--tls", action="store_true", help="use TLS")
    p.add_argument("--ca", metavar="PEM", help="CA bundle to verify the receiver (with --tls)")
    p.add_argument("--cert", metavar="PEM", help="client certificate (with --tls)")
    p.add_argument("--key", metavar="PEM", help="client certificate key (with --tls)")

    p = sub.add_parser("inbox", help="counts of received messages; quarantined ones")
    _common(p)
    p.add_argument("--failed", action="store_true", help="list quarantined/rejected messages")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("patient", help="stored patients")
    patient_sub = p.add_subparsers(dest="patient_command", metavar="ACTION", required=True)
    show = patient_sub.add_parser("show", help="the stored timeline of one patient")
    _common(show)
    show.add_argument("mrn")
    show.add_argument("--authority", help="assigning authority of the MRN")
    show.add_argument("--json", action="store_true")

    p = sub.add_parser("hl7", help="HL7 tools")
    hl7_sub = p.add_subparsers(dest="hl7_command", metavar="ACTION", required=True)
    validate = hl7_sub.add_parser("validate", help="report conformance problems (hl7apy)")
    _common(validate)
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")

    p = sub.add_parser("workstation", help="a department workstation without a screen: "
                       "follows the journal, prints each banner as a JSON line")
    _common(p)

    p = sub.add_parser("department", help="a department's database roles and row-level "
                       "security (PostgreSQL; run by the DBA, docs/department.md)")
    dept_sub = p.add_subparsers(dest="department_command", metavar="ACTION", required=True)
    init = dept_sub.add_parser("init", help="the workstations' group role, its grants and "
                               "policies, and a department's points of care")
    _common(init)
    init.add_argument("--department", required=True, help="e.g. ED")
    init.add_argument("--locations", required=True,
                      help="its points of care, comma-separated (PV1-3.1 codes, e.g. ER,ER-OBS)")
    init.add_argument("--group", default="clarion_workstation", help="the group role")
    init.add_argument("--sql", action="store_true", help="print the statements, run nothing")
    add = dept_sub.add_parser("add-workstation", help="a login role for one workstation (or "
                              "one clinician's certificate) in a department")
    _common(add)
    add.add_argument("role", help="the database role (the certificate's CN), e.g. ws_er_1")
    add.add_argument("--department", required=True)
    add.add_argument("--workstation", required=True, help="the name its events record")
    add.add_argument("--clinician", default="", help="for a clinician's own role")
    add.add_argument("--group", default="clarion_workstation")
    add.add_argument("--sql", action="store_true", help="print the statements, run nothing")

    p = sub.add_parser("engines", help="which inference engines are available, and why not")
    _common(p)
    p.add_argument("--model", default="all", help="a model id, or all (the default)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("score", help="score stored patients with the risk model")
    _common(p)
    p.add_argument("--mrn", action="append", default=[], help="patient identifier (repeatable)")
    p.add_argument("--authority", action="append", default=[],
                   help="assigning authority, paired with the --mrn in the same position")
    p.add_argument("--all", action="store_true", help="every stored patient")
    p.add_argument("--model", default="t2d")
    p.add_argument("--engine", choices=["auto", "onnxruntime", "onnxruntime-int8"],
                   default="auto", help="auto: run the selection and validation gate")
    p.add_argument("--json", action="store_true", help="one JSON object per patient per line")

    p = sub.add_parser("model", help="model tools")
    model_sub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    report = model_sub.add_parser("report", help="evaluation report (Markdown and PNGs)")
    _common(report)
    report.add_argument("model_id", metavar="MODEL")
    report.add_argument("--out", type=Path, help="output folder (default: ./report-MODEL)")
    report.add_argument("--patients", type=int, default=8000,
                        help="held-out synthetic patients to generate")
    shift = model_sub.add_parser(
        "shift", help="the model on a feed unlike ours, through the whole HL7 chain")
    _common(shift)
    shift.add_argument("model_id", metavar="MODEL")
    shift.add_argument("--patients", type=int, default=4000,
                       help="synthetic patients per site (default 4000; a few minutes)")
    shift.add_argument("--seed", type=int, help="generator seed (default: training seed + 202)")
    shift.add_argument("--write-card", action="store_true",
                       help="store the result in the model card (for `clarion model report`)")

    p = sub.add_parser("demo", help="the app on a throwaway profile with a synthetic feed")
    _common(p)
    p.add_argument("--headless", action="store_true",
                   help="no screen: print each alert and its log entries")

    p = sub.add_parser("open", help="open a patient in the running app (EHR launch)")
    _common(p)
    p.add_argument("--mrn", required=True)
    p.add_argument("--authority")

    p = sub.add_parser("stats", help="adoption: alerts, view rate, dismissals, follow-through")
    _common(p)
    p.add_argument("--since", default="30d", help="window, e.g. 30d, 12h, 2w (default 30d)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--by", choices=["department", "workstation", "clinician", "model", "tier",
                                    "week"], help="the figures per group")
    p.add_argument("--names", action="store_true",
                   help="clinicians by name (default: pseudonyms)")

    p = sub.add_parser("report", help="adoption report for a committee (PDF) and exports (CSV)")
    _common(p)
    p.add_argument("--since", default="30d", help="window, e.g. 30d, 2w (default 30d)")
    p.add_argument("--pdf", type=Path, help="write the report here")
    p.add_argument("--csv", type=Path, help="write the event table and daily figures here")
    p.add_argument("--department", help="only this department")
    p.add_argument("--names", action="store_true",
                   help="clinicians by name (default: pseudonyms)")

    p = sub.add_parser("dashboard", help="the adoption dashboard (a window)")
    _common(p)

    p = sub.add_parser("app", help="the desktop app (what `clarion` with no command runs)")
    _common(p)
    p.add_argument("link", nargs="?", help="a clarion://open?mrn=… link")

    p = sub.add_parser("config", help="every setting, its value and where it came from")
    _common(p)
    p.add_argument("--default", action="store_true", help="print the default file")

    p = sub.add_parser("doctor", help="self-check after an install: one line per check, "
                                      "non-zero exit if anything is wrong")
    _common(p)
    p.add_argument("--json", action="store_true", help="the checks as JSON")
    return parser


def version_line() -> str:
    """`clarion --version`: Clarion's version, and the Python and platform it runs on.
    (Not `platform.uname()`: on Windows it asks WMI, which can take seconds, and which
    wine does not implement.)"""
    import os
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("clarion")
    except PackageNotFoundError:  # run from a source tree that was never installed
        ours = "(not installed)"
    system = {"win32": "Windows", "linux": "Linux", "darwin": "macOS"}.get(sys.platform,
                                                                           sys.platform)
    machine = os.uname().machine if hasattr(os, "uname") else \
        os.environ.get("PROCESSOR_ARCHITECTURE", "unknown")
    return f"clarion {ours} (Python {platform.python_version()}, {system} {machine})"


def _command_line(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The settings given as options: the top layer of the configuration."""
    layer: dict[str, dict[str, Any]] = {}
    if getattr(args, "db", None):
        layer["database"] = {"url": args.db}
    if args.command == "listen":
        given = {key: getattr(args, key) for key in ("host", "port")
                 if getattr(args, key, None) is not None}
        if given:
            layer["listener"] = given
    return layer


def _configure(args: argparse.Namespace) -> Config:
    """The configuration for this command; overrides of locked keys are reported."""
    config = load_config(args.config, command_line=_command_line(args))
    for refused in config.sources.refused:
        print(f"clarion: {refused}", file=sys.stderr)
    return config


def _load(args: argparse.Namespace) -> Config:
    config = _configure(args)
    logs.setup_logging(config.logging.level, config.log_file)
    logs.load_pseudonym_key(config.data_dir)
    return config


_engines: list[Engine] = []


def _store(config: Config) -> Engine:
    """The store for this command; closed when the command returns (see `main`)."""
    engine = open_store(config.database_url)
    _engines.append(engine)
    return engine


def cmd_listen(args: argparse.Namespace) -> int:
    config = _load(args)
    if config.department.role == "workstation":
        raise ConfigError("[department] role = \"workstation\": a workstation does not "
                          "listen; it follows the department's store. Run `clarion listen` "
                          "on the receiver, or set role to \"receiver\" or \"standalone\"")
    return run_listener(config)


def run_listener(config: Config, stop_requested: threading.Event | None = None) -> int:
    """The headless receiver until SIGINT/SIGTERM (or `stop_requested`, which the
    Windows service sets): stop accepting, answer the frames in flight, commit, exit 0.
    Exit 1 if the port cannot be bound."""
    from app.adoption.watch import AnomalyWatch
    from app.ingest.service import IngestService

    engine = _store(config)
    service = IngestService(config, engine)
    watch = AnomalyWatch(engine)  # the receiver logs a broken feed or model each morning

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # Windows; or not the main thread
                pass
        if stop_requested is not None:
            threading.Thread(target=lambda: (stop_requested.wait(),
                                             loop.call_soon_threadsafe(stop.set)),
                             daemon=True).start()
        service.start_workers()
        watch.start()
        server = service.make_server()
        try:
            await server.start()
            service.announce(server.bound_port)
            print(f"clarion: listening on {config.listener.host}:{server.bound_port}; "
                  "Ctrl-C to stop", file=sys.stderr, flush=True)
            await stop.wait()
        finally:
            await server.stop()
            service.withdraw()
            await asyncio.to_thread(service.stop_workers)
            watch.stop()

    try:
        asyncio.run(run())
    except OSError as exc:
        print(f"clarion: cannot listen on {config.listener.host}:{config.listener.port}: "
              f"{exc}. Is another Clarion running? Choose another --port.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def split_messages(data: bytes) -> list[bytes]:
    """A file may hold one message or several; each starts with MSH."""
    parts = [p for p in _MESSAGE_START.split(data) if p.strip()]
    return [p.rstrip(b"\r\n").replace(b"\r\n", b"\r").replace(b"\n", b"\r") for p in parts]


def _ack_code(ack: bytes) -> tuple[str, str]:
    text = ack.decode("latin-1")
    sep = text[3] if text.startswith("MSH") and len(text) > 3 else "|"
    code, detail = "??", ""
    for segment in text.replace("\n", "\r").split("\r"):
        fields = segment.split(sep)
        if fields[0] == "MSA" and len(fields) > 1:
            code = fields[1]
        elif fields[0] == "ERR":
            detail = fields[8] if len(fields) > 8 and fields[8] else sep.join(fields[1:])
    return code, detail


def cmd_send(args: argparse.Namespace) -> int:
    from integrations.mllp import MllpClient

    host, _, port = args.to.rpartition(":")
    if not host or not port.isdigit():
        print(f"clarion send: --to must be HOST:PORT, got {args.to!r}", file=sys.stderr)
        return 2
    context = None
    if args.tls:
        context = ssl.create_default_context(cafile=args.ca)
        if args.cert:
            context.load_cert_chain(args.cert, args.key)
    failures = 0
    try:
        with MllpClient(host, int(port), ssl_context=context) as client:
            for path in args.files:
                try:
                    messages = split_messages(path.read_bytes())
                except OSError as exc:
                    print(f"{path}: cannot read: {exc}", file=sys.stderr)
                    failures += 1
                    continue
                for index, payload in enumerate(messages, 1):
                    code, detail = _ack_code(client.send(payload))
                    label = f"{path}" + (f" #{index}" if len(messages) > 1 else "")
                    print(f"{label}: {code}" + (f" ({detail})" if detail else ""))
                    failures += code not in ("AA", "CA")
    except (OSError, ConnectionError) as exc:
        print(f"clarion send: {args.to}: {exc}", file=sys.stderr)
        return 1
    return 1 if failures else 0


def cmd_inbox(args: argparse.Namespace) -> int:
    config = _load(args)
    engine = _store(config)
    with Session(engine) as session:
        counts = dict(session.execute(
            select(InboxMessage.status, func.count()).group_by(InboxMessage.status)).all())
        duplicates = session.scalar(select(func.coalesce(func.sum(
            InboxMessage.duplicate_count), 0))) or 0
        pending_retry = session.scalar(select(func.count()).where(
            InboxMessage.status == InboxStatus.RECEIVED.value,
            InboxMessage.attempts > 0)) or 0
        summary = {
            "received": sum(counts.values()),
            **{status.value: counts.get(status.value, 0) for status in InboxStatus},
            "duplicate": int(duplicates),
            "retrying": pending_retry,
        }
        summary["pending"] = summary.pop(InboxStatus.RECEIVED.value)
        failed_rows = []
        if args.failed:
            failed_rows = [
                {"id": r.id, "received_at": r.received_at.isoformat(), "status": r.status,
                 "type": f"{r.message_type}^{r.trigger}".strip("^"),
                 "control_id": r.control_id, "sender": r.sending_application,
                 "attempts": r.attempts,
                 "error": r.last_error or f"{r.ack_code} {r.ack_error_code}: {r.ack_error_text}"}
                for r in session.scalars(select(InboxMessage).where(InboxMessage.status.in_(
                    [InboxStatus.FAILED.value, InboxStatus.REJECTED.value]))
                    .order_by(InboxMessage.id))]
    if args.json:
        out: dict[str, Any] = dict(summary)
        if args.failed:
            out["failed_messages"] = failed_rows
        print(json.dumps(out, indent=2))
        return 0
    print("  ".join(f"{k}: {v}" for k, v in summary.items()))
    for row in failed_rows:
        print(f"#{row['id']} {row['received_at']} {row['status']} {row['type']} "
              f"control id {row['control_id']!r} from {row['sender']!r} "
              f"(attempts {row['attempts']}): {row['error']}")
    if args.failed and not failed_rows:
        print("no failed or rejected messages")
    return 0


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (date, datetime)) else value


def cmd_patient_show(args: argparse.Namespace) -> int:
    config = _load(args)
    engine = _store(config)
    with Session(engine) as session:
        matches = find_by_identifier(session, args.mrn, args.authority)
        if not matches:
            print(f"no patient with identifier {args.mrn!r}"
                  + (f" from authority {args.authority!r}" if args.authority else ""),
                  file=sys.stderr)
            return 1
        if len(matches) > 1:
            print(f"identifier {args.mrn!r} is held by {len(matches)} patients of different "
                  "authorities; give --authority", file=sys.stderr)
            return 1
        t = timeline(session, matches[0])
        data: dict[str, Any] = {
            "patient": {k: _jsonable(getattr(t.patient, k)) for k in (
                "id", "family_name", "given_name", "birth_date", "sex", "deceased")},
            "identifiers": [{"value": i.value, "authority": i.authority, "type": i.type_code}
                            for i in t.identifiers],
            "encounters": [{k: _jsonable(getattr(e, k)) for k in (
                "visit_number", "patient_class", "status", "location", "prior_location",
                "attending", "admitted_at", "discharged_at", "last_event")} for e in t.encounters],
            "observations": [{k: _jsonable(getattr(o, k)) for k in (
                "observed_at", "code", "coding_system", "loinc", "display", "value_type",
                "value_text", "value_num", "units", "reference_range", "abnormal_flag",
                "status")} for o in t.observations],
            "diagnoses": [{k: _jsonable(getattr(d, k)) for k in (
                "code", "coding_system", "display", "diagnosed_at", "diagnosis_type")}
                for d in t.diagnoses],
        }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    p = data["patient"]
    print(f"{p['family_name']}, {p['given_name']}  born {p['birth_date'] or '?'}  "
          f"sex {p['sex'] or '?'}" + ("  (deceased)" if p["deceased"] else ""))
    print("identifiers: " + ", ".join(
        f"{i['value']} ({i['authority'] or 'no authority'}{', ' + i['type'] if i['type'] else ''})"
        for i in data["identifiers"]))
    print(f"\nencounters ({len(data['encounters'])}):")
    for e in data["encounters"]:
        print(f"  {e['visit_number'] or '(no number)'}  {e['status']}  class {e['patient_class']}"
              f"  at {e['location'] or '?'}  admitted {e['admitted_at'] or '?'}"
              + (f"  discharged {e['discharged_at']}" if e["discharged_at"] else ""))
    print(f"\nresults ({len(data['observations'])}):")
    for o in data["observations"]:
        value = o["value_text"] if o["value_num"] is None else f"{o['value_num']:g}"
        print(f"  {o['observed_at'] or '?':25}  {o['display'] or o['code']:30.30}  "
              f"{value} {o['units']}  {o['abnormal_flag']}  [{o['status']}]")
    print(f"\ndiagnoses ({len(data['diagnoses'])}):")
    for d in data["diagnoses"]:
        print(f"  {d['code']} ({d['coding_system']})  {d['display']}  {d['diagnosed_at'] or ''}")
    return 0


def cmd_hl7_validate(args: argparse.Namespace) -> int:
    from integrations.hl7.validate import validate_message

    worst = 0
    for path in args.files:
        try:
            messages = split_messages(path.read_bytes())
        except OSError as exc:
            print(f"{path}: cannot read: {exc}")
            worst = 1
            continue
        for index, payload in enumerate(messages, 1):
            label = f"{path}" + (f" #{index}" if len(messages) > 1 else "")
            problems = validate_message(payload)
            errors = sum(p.severity == "error" for p in problems)
            verdict = (f"{errors} error(s), {len(problems) - errors} warning(s)"
                       if problems else "conforms")
            print(f"{label}: {verdict}")
            for problem in problems:
                print(f"  {problem.severity}: {problem.text}")
            worst = max(worst, 1 if errors else 0)
    return worst


def _engine_selection(config: Config, model: str, choice: str = "auto"):  # type: ignore[no-untyped-def]
    from engines.card import load_card
    from engines.onnxruntime import OnnxRuntimeEngine
    from engines.select import Candidate, Selection, select_engine

    card = load_card(model)
    if choice == "auto":
        return card, select_engine(card, config.data_dir / "engines")
    engine = OnnxRuntimeEngine(card, "int8" if choice.endswith("int8") else "fp32")
    engine.load()
    return card, Selection(engine, [Candidate(engine.name, True, "chosen with --engine")])


def cmd_workstation(args: argparse.Namespace) -> int:
    from app.clinic.headless import run_workstation

    return run_workstation(_load(args))


def cmd_department(args: argparse.Namespace) -> int:
    from app.store.department import (
        DepartmentError,
        department_statements,
        init_statements,
        run,
        workstation_statements,
    )

    config = _load(args)
    engine = _store(config)  # migrated: the tables and functions the grants name
    if args.department_command == "init":
        def build(conn):  # type: ignore[no-untyped-def]
            return [*init_statements(conn, args.group),
                    *department_statements(args.department, args.locations.split(","))]
    else:
        def build(conn):  # type: ignore[no-untyped-def]
            return workstation_statements(conn, args.role, args.department, args.workstation,
                                          args.clinician, args.group)
    try:
        statements = run(engine, build, execute=not args.sql)
    except DepartmentError as exc:
        print(f"clarion department: {exc}", file=sys.stderr)
        return 2
    if args.sql:
        print(";\n".join(statements) + ";")
    elif args.department_command == "init":
        print(f"department {args.department}: points of care {args.locations}; group role "
              f"{args.group} may read its department's patients and append to the adoption "
              f"log ({len(statements)} statements)")
    else:
        print(f"role {args.role}: workstation {args.workstation} in {args.department}"
              + (f", clinician {args.clinician}" if args.clinician else "")
              + f"; connect with postgresql+psycopg://{args.role}@HOST/DB?sslmode=verify-full")
    return 0


def cmd_engines(args: argparse.Namespace) -> int:
    from engines.card import shipped_models

    config = _load(args)
    models = shipped_models() if args.model == "all" else [args.model]
    reports = []
    for model in models:
        card, selection = _engine_selection(config, model)
        info = selection.engine.describe()
        rows = [{"engine": c.name, "usable": c.usable, "reason": c.reason,
                 "gate": None if c.gate is None else {
                     "validation_rows": c.gate.patients,
                     "max_abs_diff": round(c.gate.max_abs_diff, 6),
                     "mean_kl": round(c.gate.mean_kl, 6),
                     # a classifier's gate compares calls (macro-F1, points), a risk's AUROC
                     ("macro_f1_drop" if card.is_classifier else "auroc_drop"):
                         round(c.gate.auroc_drop, 5), "passed": c.gate.passed}}
                for c in selection.candidates]
        reports.append({"model": f"{card.id} {card.version}", "selected": info.name,
                        "precision": info.precision, "file": Path(info.model_file).name,
                        "details": info.details, "candidates": rows})
    if args.json:
        print(json.dumps({"models": reports}, indent=2))
        return 0
    for report in reports:
        print(f"model {report['model']}: using {report['selected']} ({report['precision']}, "
              f"{report['file']})")
        for row in report["candidates"]:
            mark = "yes" if row["usable"] else "no "
            print(f"  [{mark}] {row['engine']:24} {row['reason']}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from app.clinic.features import FeatureCache, utc_now
    from app.clinic.scoring import Scorer
    from app.ecg.analysis import load_analyzer
    from app.store.models import Patient

    if not args.all and not args.mrn:
        print("clarion score: give --mrn MRN (repeatable) or --all", file=sys.stderr)
        return 2
    config = _load(args)
    engine_db = _store(config)
    card, selection = _engine_selection(config, args.model, args.engine)
    scorer = Scorer(card, selection.engine, FeatureCache(engine_db))
    targets: list[tuple[int, str, str]] = []
    with Session(engine_db) as session:
        if args.all:
            for patient in session.scalars(select(Patient).where(
                    Patient.merged_into_id.is_(None)).order_by(Patient.id)):
                ident = patient.identifiers[0] if patient.identifiers else None
                targets.append((patient.id, ident.value if ident else "",
                                ident.authority if ident else ""))
        for n, mrn in enumerate(args.mrn):
            authority = args.authority[n] if n < len(args.authority) else None
            found = find_by_identifier(session, mrn, authority)
            if len(found) != 1:
                print(f"clarion score: {mrn!r}: " + ("no such patient" if not found else
                      "held by several authorities; give --authority"), file=sys.stderr)
                return 1
            targets.append((found[0].id, mrn, authority or found[0].identifiers[0].authority))
    now = utc_now()
    analyzer = load_analyzer(config.data_dir / "engines")
    for patient_id, mrn, authority in targets:
        result = scorer.score(patient_id, now)
        latency = {k: round(v, 3) for k, v in result.latency_ms.items()}
        recordings = _ecg_scores(engine_db, analyzer, patient_id) if analyzer else []
        if args.json:
            print(json.dumps({
                "mrn": mrn, "authority": authority,
                "scores": [{"label": s.label, "risk": None if s.risk is None else round(s.risk, 4),
                            "tier": s.tier, "factors": [f.words for f in s.factors],
                            "finding": s.finding, "out_of_scope": s.out_of_scope}
                           for s in result.scores]
                + [{"label": s.label, "risk": None if s.risk is None else round(s.risk, 4),
                    "tier": s.tier, "summary": s.summary,
                    "classes": {k: round(v, 4) for k, v in s.classes.items()},
                    "at": s.at.isoformat() if s.at else None, "recording": recording_id,
                    "engine": engine_name, "out_of_scope": s.out_of_scope}
                   for recording_id, s, engine_name in recordings],
                "engine": result.engine, "model": result.model, "latency_ms": latency}))
            continue
        for _recording, s, _engine in recordings:
            when = f" ({s.at:%Y-%m-%d %H:%M} UTC)" if s.at else ""
            print(f"{mrn} ({authority}): {s.display}{when}: {s.statement}")
        for s in result.scores:
            risk = "n/a" if s.risk is None else f"{s.risk:.0%}"
            print(f"{mrn} ({authority}): {s.display} risk {risk} within {card.horizon} — "
                  f"{s.tier_words}")
            for factor in s.factors:
                print(f"    because: {factor.words}")
            for note in (s.finding, s.out_of_scope):
                if note:
                    print(f"    note: {note}")
        print(f"    engine {result.engine}, features {latency['features']} ms, "
              f"inference {latency['inference']} ms")
    return 0


def _ecg_scores(engine_db: Engine, analyzer: EcgAnalyzer, patient_id: int,
                limit: int = 10) -> list[tuple[int, Score, str]]:
    """(recording id, score, engine) for each of the patient's latest recordings."""
    from app.clinic.ecg import ecg_scores
    from app.store.waveforms import patient_waveforms

    with engine_db.connect() as conn:
        stored = [w for w in patient_waveforms(conn, [patient_id], limit=limit)
                  if w.status != "document"]
    out = []
    for waveform in stored:
        for model, score in ecg_scores(analyzer.models, analyzer.analyse(waveform)):
            out.append((waveform.id, score, model.selection.engine.name))
    return out


def cmd_model(args: argparse.Namespace) -> int:
    """`clarion model report` and `clarion model shift`: both need the report extra."""
    from engines.card import load_card

    action = args.model_command
    try:
        card = load_card(args.model_id)
        if action == "shift":
            return _model_shift(args, card)
        if card.is_classifier:  # an ECG model: its test figures, from its card
            from engines.report import classifier_report

            text = classifier_report(card)
            out = args.out or Path(f"report-{card.id}")
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.md").write_text(text, encoding="utf-8")
            print(text)
            print(f"wrote {out / 'report.md'}")
            return 0
        from engines.report import write_report
        path = write_report(card, args.out or Path(f"report-{card.id}"), args.patients)
    except ImportError as exc:
        print(f"clarion model {action} needs the report extra: pip install 'clarion[report]' "
              f"({exc})", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"clarion model {action}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def _model_shift(args: argparse.Namespace, card: Any) -> int:
    from app.clinic.shift import shift_check, table

    check = shift_check(card, args.patients, args.seed)
    check["table"] = table(check)
    print("\n".join(check["table"]))
    if args.write_card:
        path = card.directory / "card.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        data["shift"] = check
        path.write_text(json.dumps(data, indent=2))
        print(f"wrote the result into {path}")
    return 0 if check["gap_met"] and check["beats_baselines"] else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import demo_config, run_headless

    config = demo_config(_configure(args))
    logs.setup_logging("WARNING", config.data_dir / "logs" / "clarion.log")
    logs.load_pseudonym_key(config.data_dir)
    if not args.headless and not _has_display():
        print("clarion demo: no display found (DISPLAY/WAYLAND_DISPLAY unset); running the "
              "demo headless. On a desktop, `clarion demo` opens the app.", file=sys.stderr)
        args.headless = True
    import shutil

    try:
        if args.headless:
            run_headless(config)
            return 0
        return _gui(args)(config, [], True)
    finally:
        logs.setup_logging("WARNING", None)  # release the log file before removing it
        shutil.rmtree(config.data_dir, ignore_errors=True)  # a throwaway profile


def _has_display() -> bool:
    import os

    if sys.platform in ("win32", "darwin") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _gui(args: argparse.Namespace) -> GuiRunner:
    runner: GuiRunner | None = getattr(args, "gui", None)
    if runner is None:
        raise ConfigError("the desktop app is not available in this entry point; run the "
                          "`clarion` command installed with Clarion")
    return runner


def _need_display(command: str) -> bool:
    if _has_display():
        return True
    print(f"clarion {command}: no display found (DISPLAY/WAYLAND_DISPLAY unset). The desktop "
          "app needs a screen; for a headless receiver run `clarion listen`, for the demo "
          "`clarion demo --headless`.", file=sys.stderr)
    return False


def cmd_app(args: argparse.Namespace) -> int:
    if not _need_display("app"):
        return 2
    config = _load(args)
    return _gui(args)(config, [args.link] if getattr(args, "link", None) else [], False)


def cmd_open(args: argparse.Namespace) -> int:
    if not _need_display("open"):
        return 2
    config = _load(args)
    request = ["--mrn", args.mrn] + (["--authority", args.authority] if args.authority else [])
    return _gui(args)(config, request, False)


def _since(args: argparse.Namespace, command: str) -> timedelta | None:
    """--since as a span, or None with the reason printed (the command exits 2)."""
    from app.adoption.stats import parse_since

    try:
        return parse_since(args.since)
    except ValueError as exc:
        print(f"clarion {command}: {exc}", file=sys.stderr)
        return None


def cmd_stats(args: argparse.Namespace) -> int:
    from app.adoption.stats import adoption, render
    from app.store.models import utcnow

    span = _since(args, "stats")
    if span is None:
        return 2
    config = _load(args)
    engine = _store(config)
    since = utcnow() - span
    if args.by:
        from app.adoption.stats import breakdown, render_breakdown

        rows = breakdown(engine, since, args.by, pseudonyms=not args.names)
        print(json.dumps(rows, indent=2) if args.json else render_breakdown(args.by, rows))
        return 0
    from app.adoption import anomaly

    figures = adoption(engine, since)
    figures["anomalies"] = [a.words for a in anomaly.check(engine, days=max(span.days, 1))]
    print(json.dumps(figures, indent=2) if args.json else render(figures))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from app.adoption.figures import Filters
    from app.adoption.report import build, write_csv, write_pdf
    from app.store.models import utcnow
    from engines.card import load_card

    span = _since(args, "report")
    if span is None:
        return 2
    if not args.pdf and not args.csv:
        print("clarion report: say where: --pdf FILE and/or --csv DIR", file=sys.stderr)
        return 2
    config = _load(args)
    engine = _store(config)
    filters = Filters(since=utcnow() - span, department=args.department)
    report = build(engine, filters, pseudonyms=not args.names)
    if args.pdf:
        card = load_card("t2d")
        path = write_pdf(report, args.pdf, args.department or config.workstation.department,
                         f"{card.display} {card.version}: {card.disclaimer}")
        print(f"wrote {path} ({report.overall.alerts} alerts, "
              f"{len(report.anomalies)} anomalies)")
    if args.csv:
        for path in write_csv(engine, report, args.csv):
            print(f"wrote {path}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    if not _need_display("dashboard"):
        return 2
    config = _load(args)
    runner = getattr(args, "dashboard", None)
    if runner is None:
        raise ConfigError("the dashboard is not available in this entry point; run the "
                          "`clarion` command installed with Clarion")
    return int(runner(config))


def cmd_config(args: argparse.Namespace) -> int:
    if args.default:
        print(render_default_config())
        return 0
    config = _configure(args)
    sources = config.sources
    for what, path in (("machine file", sources.machine_file), ("user file", sources.user_file)):
        state = "read" if path in sources.files else "not present"
        print(f"{what + ':':16s}{path} ({state})")
    print(f"{'data directory:':16s}{config.data_dir}")
    print(f"{'database:':16s}{_hide_password(config.database_url)}")
    print()
    width = max(len(key) for key in keys())
    for key in keys():
        section, _, name = key.partition(".")
        value = getattr(getattr(config, section), name)
        lock = " [locked]" if key in sources.locked else ""
        print(f"{key:{width}s} = {_shown(key, value):30s} {sources.of(key)}{lock}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from app.doctor import FAIL, render, run_checks

    checks = run_checks(lambda: _configure(args), version_line(), getattr(args, "display", None))
    print(render(checks, args.json))
    return 1 if any(c.status == FAIL for c in checks) else 0


def _shown(key: str, value: Any) -> str:
    """A value as `clarion config` prints it: TOML (strings quoted), a database
    password hidden."""
    return toml_value(_hide_password(value) if key == "database.url" and value else value)


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(argv: Sequence[str] | None = None, gui: GuiRunner | None = None,
         dashboard: Callable[[Config], int] | None = None,
         display: Callable[[], str | None] | None = None) -> int:
    """The `clarion` command. `gui` runs the desktop app, `dashboard` the adoption
    dashboard and `display` says why no window can open (all given by ui.launcher: the
    core never imports Qt)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("clarion://"):  # the OS hands a launch link over as is
        argv = ["app", *argv]
    args = parser.parse_args(argv or ["app"])
    args.gui = gui
    args.dashboard = dashboard
    args.display = display
    handlers = {
        "listen": cmd_listen, "send": cmd_send, "inbox": cmd_inbox, "config": cmd_config,
        "patient": cmd_patient_show, "hl7": cmd_hl7_validate, "engines": cmd_engines,
        "score": cmd_score, "model": cmd_model, "demo": cmd_demo, "open": cmd_open,
        "stats": cmd_stats, "app": cmd_app, "report": cmd_report, "dashboard": cmd_dashboard,
        "doctor": cmd_doctor, "department": cmd_department,
        "workstation": cmd_workstation,
    }
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print(f"clarion: {exc}", file=sys.stderr)
        return 2
    finally:
        while _engines:
            _engines.pop().dispose()


if __name__ == "__main__":
    sys.exit(main())
