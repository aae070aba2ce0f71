"""The desktop app: one instance per user, the listener in its own thread, tray and window.

A second `clarion …` (or a `clarion://open?mrn=…` launch) hands its request to the running
instance over a QLocalSocket and exits.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

from app import logs
from app.config import Config
from ui.bridge import Bridge
from ui.display import application
from ui.qt import (
    QByteArray,
    QLocalServer,
    QLocalSocket,
    QMenu,
    QSystemTrayIcon,
    qInstallMessageHandler,
)

log = logging.getLogger("clarion.ui")
qt_log = logging.getLogger("clarion.qt")


def instance_name(config: Config) -> str:
    """One instance per user and profile."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    profile = hashlib.sha256(str(config.data_dir).encode()).hexdigest()[:10]
    return f"clarion-{user}-{profile}"


def parse_open_request(args: list[str]) -> dict[str, Any] | None:
    """`--mrn X [--authority A]` or a `clarion://open?mrn=…&authority=…` URL."""
    for arg in args:
        if arg.startswith("clarion://"):
            url = urlparse(arg)
            if url.netloc != "open" and url.path.strip("/") != "open":
                raise ValueError(f"unknown Clarion link {arg!r}; expected clarion://open?mrn=…")
            query = parse_qs(url.query)
            if "mrn" not in query:
                raise ValueError(f"link {arg!r} has no mrn")
            return {"mrn": query["mrn"][0], "authority": query.get("authority", [None])[0]}
    if "--mrn" in args:
        i = args.index("--mrn")
        authority = args[args.index("--authority") + 1] if "--authority" in args else None
        return {"mrn": args[i + 1], "authority": authority}
    return None


def send_to_running(name: str, request: dict[str, Any], timeout_ms: int = 1500) -> bool:
    """Hand a request to the running instance; False if none is running."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(timeout_ms):
        return False
    socket.write(QByteArray(json.dumps(request).encode() + b"\n"))
    socket.flush()
    socket.waitForBytesWritten(timeout_ms)
    socket.waitForReadyRead(timeout_ms)
    socket.disconnectFromServer()
    return True


class InstanceServer:
    """Receives requests from later starts of Clarion."""

    def __init__(self, name: str, handle: Any) -> None:
        self.server = QLocalServer()
        QLocalServer.removeServer(name)  # a stale socket of a crashed instance
        if not self.server.listen(name):
            raise RuntimeError(f"cannot listen on local socket {name}: "
                               f"{self.server.errorString()}")
        self.server.newConnection.connect(self._accept)
        self._handle = handle

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            socket.readyRead.connect(lambda s=socket: self._read(s))

    def _read(self, socket: QLocalSocket) -> None:
        if not socket.canReadLine():
            return
        try:
            request = json.loads(bytes(socket.readLine().data()).decode())
            self._handle(request)
            socket.write(QByteArray(b"ok\n"))
        except (ValueError, LookupError) as exc:
            log.warning("request from another Clarion start refused: %s", exc)
            socket.write(QByteArray(f"error: {exc}\n".encode()))
        socket.flush()


GIL_SWITCH_S = 0.001


def tune_interpreter() -> None:
    """The GUI thread shares the interpreter with the listener, the fast lane and the
    log's writer: with Python's default 5 ms switch interval, a banner ready to paint
    can wait that long for a thread that just handed it over. 1 ms keeps the hand-over
    short at a small cost in throughput."""
    sys.setswitchinterval(GIL_SWITCH_S)


def is_admin(config: Config) -> bool:
    """Whether this OS user may open the adoption dashboard ([roles] admins)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        return False
    return user in config.roles.admins


def _route_qt_messages(mode: Any, context: Any, message: str) -> None:
    qt_log.warning("Qt: %s", message)


def run_app(config: Config, args: list[str], demo: bool = False) -> int:  # noqa: C901
    """Start the app (or hand `args` to the running one). Returns the exit code."""
    from app.clinic.service import ClinicService
    from app.ecg.analysis import load_ecg
    from app.ingest.service import IngestService
    from app.store.db import open_store
    from engines.card import load_card
    from engines.select import select_engine
    from ui.main_window import WARN, MainWindow, status_icon

    # Qt aborts the process when its platform plugin cannot load; `application` says why
    # first and gives none.
    qInstallMessageHandler(_route_qt_messages)
    tune_interpreter()
    app = application()
    if app is None:
        return 3
    app.setApplicationName("Clarion")
    app.setQuitOnLastWindowClosed(False)
    name = instance_name(config)
    request = parse_open_request(args)
    if send_to_running(name, request or {"show": True}):
        print("clarion: handed over to the running instance", file=sys.stderr)
        return 0

    engine = open_store(config.database_url)
    card = load_card("t2d")
    selection = select_engine(card, config.data_dir / "engines")
    clinic = ClinicService(config, engine, card, selection,
                           ecg=load_ecg(config.data_dir / "engines"))
    bridge = Bridge()
    clinic.on_alert.append(bridge.alert.emit)
    clinic.on_open_changed.append(bridge.open_patients.emit)
    service: Any = None
    follower: Any = None
    if config.department.role == "workstation":
        # A department's workstation: the receiver listens; this one follows its journal.
        from app.ingest.journal import JournalFollower

        follower = JournalFollower(engine, clinic.on_patient_changed)
        follower.start()
        listening = "the department's change journal"
    else:
        service = IngestService(config, engine, on_change=clinic.on_patient_changed,
                                wants_now=clinic.wants_now)
        try:
            server = service.start_in_thread()
        except OSError as exc:
            print(f"clarion: cannot listen on {config.listener.host}:{config.listener.port}: "
                  f"{exc}. Set [listener] port in the config or stop the other receiver.",
                  file=sys.stderr)
            return 1
        listening = f"{config.listener.host}:{server.bound_port}"
    tray = None
    if QSystemTrayIcon.isSystemTrayAvailable():
        tray = QSystemTrayIcon(status_icon(WARN))
        menu = QMenu()
        tray.setContextMenu(menu)
        tray.setToolTip(f"Clarion — listening on {listening}")
    window = MainWindow(clinic, bridge, listening, tray, following=follower is not None)
    dashboards: list[Any] = []

    def open_dashboard() -> None:
        from ui.dashboard import open_dashboard as make

        if not dashboards:
            dashboards.append(make(engine, config))
        dashboards[0].showNormal()
        dashboards[0].raise_()

    admin = is_admin(config)
    if admin:
        window.enable_dashboard(open_dashboard)
    if tray is not None:
        menu.addAction("Show Clarion", window.showNormal)
        if admin:
            menu.addAction("Adoption dashboard…", open_dashboard)
        menu.addAction("Quit", app.quit)
        tray.activated.connect(lambda _reason: window.showNormal())
        tray.show()

    def handle(req: dict[str, Any]) -> None:
        if "mrn" in req:
            clinic.open_by_identifier(req["mrn"], req.get("authority"), "launch")
        window.showNormal()
        window.raise_()

    # The firing-anomaly check each morning: logged for IT, shown to admins.
    from app.adoption.watch import AnomalyWatch

    watch = AnomalyWatch(engine)

    def tell_admin(found: list[Any]) -> None:
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            bridge.problem.emit(f"firing anomaly {found[0].words}{more} — see the "
                                "adoption dashboard")

    if admin:
        watch.on_found.append(tell_admin)
    watch.start()
    instance = InstanceServer(name, handle)
    window.show()
    if request:
        try:
            handle(request)
        except LookupError as exc:
            bridge.problem.emit(str(exc))
            window.statusBar().showMessage(str(exc), 10000)
    stop = threading.Event()
    if demo and service is not None:
        from app.demo import ecg_messages, pick_patients, replay, today_messages
        from engines.training.feed import feed

        now = datetime.now(UTC).replace(microsecond=0)
        patients = pick_patients(now)
        today = today_messages(patients, now)
        for step, messages in enumerate(ecg_messages(patients, now, logs.alerts.info)):
            today[step].extend(messages)
        thread = threading.Thread(target=replay, daemon=True, args=(
            server.bound_port, feed(patients), today, 4.0, stop),
            kwargs={"settled": service.wait_settled})
        thread.start()
    try:
        return app.exec()
    finally:
        stop.set()
        watch.stop()
        instance.server.close()
        if service is not None:
            service.stop()
        if follower is not None:
            follower.stop()
        clinic.close()
        engine.dispose()
