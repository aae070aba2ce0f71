"""The headless listener as a Windows service (pywin32's service framework).

The MSI registers it as `ClarionListener` (installed, not started unless START_SERVICE=1),
run by pywin32's `pythonservice.exe` beside the embedded Python; the service's
`PythonClass` registry value names `app.winservice.ListenerService`. It reads the
machine-wide configuration (`%ProgramData%\\Clarion\\clarion.toml`), keeps its store in
`%ProgramData%\\Clarion\\data` unless that file says otherwise, and logs to
`%ProgramData%\\Clarion\\logs\\clarion.log` (rotated). Stopping the service stops the
listener as SIGTERM does on Linux: no new frames, the ones in flight answered, committed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import servicemanager  # type: ignore[import-not-found]  # pywin32, Windows only
import win32service  # type: ignore[import-not-found]
import win32serviceutil  # type: ignore[import-not-found]

from app import logs
from app.config import load_config

PROGRAM_DATA = Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "Clarion"


class ListenerService(win32serviceutil.ServiceFramework):  # type: ignore[misc]
    _svc_name_ = "ClarionListener"
    _svc_display_name_ = "Clarion HL7 receiver"
    _svc_description_ = "Receives the hospital's HL7 v2 feed over MLLP for Clarion."

    def __init__(self, args: Any) -> None:
        super().__init__(args)
        self.stop_requested = threading.Event()

    def SvcStop(self) -> None:  # noqa: N802 - pywin32's name
        self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
        self.stop_requested.set()

    def SvcDoRun(self) -> None:  # noqa: N802 - pywin32's name
        from app.cli import run_listener

        config = load_config(environ={**os.environ,
                                      "CLARION_PATHS__DATA_DIR": os.environ.get(
                                          "CLARION_PATHS__DATA_DIR",
                                          str(PROGRAM_DATA / "data"))})
        logs.setup_logging(config.logging.level, Path(config.logging.file) if
                           config.logging.file else PROGRAM_DATA / "logs" / "clarion.log")
        logs.load_pseudonym_key(config.data_dir)
        servicemanager.LogInfoMsg(f"{self._svc_name_}: listening on "
                                  f"{config.listener.host}:{config.listener.port}")
        code = run_listener(config, self.stop_requested)
        if code:
            servicemanager.LogErrorMsg(f"{self._svc_name_}: stopped with exit code {code}; "
                                       f"see {PROGRAM_DATA / 'logs' / 'clarion.log'}")
