"""The one object through which the core talks to the UI: Qt signals, emitted from any
thread and delivered on the GUI thread (queued connections)."""

from __future__ import annotations

from ui.qt import QObject, Signal


class Bridge(QObject):
    """Core → UI events. Connected once, in the main window."""

    #: A new alert to show (app.clinic.alerts.Alert).
    alert = Signal(object)
    #: The open patients changed (list of app.clinic.OpenPatient).
    open_patients = Signal(object)
    #: Feed status: (listening on "host:port", last message time or None, messages seen).
    feed_status = Signal(str, object, int)
    #: Something went wrong that the user should know about (a sentence).
    problem = Signal(str)
