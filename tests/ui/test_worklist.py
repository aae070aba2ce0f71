"""The worklist (a sortable table of today's patients), the patient view (risk and
factors, trends with ranges, alert history) and the recent-alerts table, driven through
the real app: listener, store, fast lane, ONNX Runtime, Qt widgets offscreen."""

from __future__ import annotations

from typing import Any

from app.adoption.log import DismissReason
from app.clinic.service import ClinicService
from tests.ui.test_app_end_to_end import adt, history, oru, send
from ui.main_window import ALERT_COLUMNS, WORKLIST_COLUMNS, MainWindow
from ui.qt import Qt, QWidget
from ui.tables import ROW_ROLE, SORT_ROLE


def _cells(window: MainWindow, row: int) -> dict[str, str]:
    model = window.worklist.model()
    return {c.header: model.index(row, i).data() for i, c in enumerate(WORKLIST_COLUMNS)}


def test_worklist_rows_sort_and_show_what_became_of_the_alert(
        running: tuple[ClinicService, MainWindow, int], qtbot: Any) -> None:
    clinic, window, port = running
    send(port, *history("WL-A"))  # prediabetes, rising HbA1c: an alert
    send(port, adt("A04", "WL-A", "ER", 1))
    send(port, adt("A04", "WL-B", "ER", 1))  # nothing on record: low, no banner
    qtbot.waitUntil(lambda: window.worklist_model.rowCount() == 2, timeout=10000)
    qtbot.waitUntil(lambda: window.queue.current is not None, timeout=10000)
    qtbot.waitUntil(lambda: all(_cells(window, r)["Alert"] != "—" for r in range(2)),
                    timeout=10000)  # both scored, and the worklist told
    header = window.worklist.horizontalHeader()
    risk_column = [c.header for c in WORKLIST_COLUMNS].index("Risk")
    window.worklist.sortByColumn(risk_column, Qt.SortOrder.DescendingOrder)
    top, bottom = _cells(window, 0), _cells(window, 1)
    assert top["MRN"] == "WL-A (H)" and bottom["MRN"] == "WL-B (H)"
    assert top["Name"] == "QUIXOTE, Alonso" and top["Born"] == "1962-01-01"
    assert top["Location"] == "ER 1 1"  # point of care, room, bed; the facility ...
    location = [c.header for c in WORKLIST_COLUMNS].index("Location")
    assert window.worklist.model().index(0, location).data(
        Qt.ItemDataRole.ToolTipRole) == "ER 1 1 H"  # ... in the tooltip
    assert "%" in top["Risk"] and top["Risk"][0] in "▲●"  # icon, words and figure
    assert top["Alert"] in ("alert raised", "shown")
    assert bottom["Alert"].startswith("suppressed: ")  # and why
    # Sorting goes by the value, not the text.
    model = window.worklist.model()
    assert model.index(0, risk_column).data(SORT_ROLE) > model.index(1, risk_column).data(
        SORT_ROLE)
    assert header.sortIndicatorSection() == risk_column
    # Screen readers get the column with each cell.
    assert model.index(0, 0).data(Qt.ItemDataRole.AccessibleTextRole) == \
        "Name: QUIXOTE, Alonso"
    # The clinician acts on the banner: the worklist and the recent alerts say so.
    alert = window.banner.alert
    window.banner.acknowledge()
    qtbot.waitUntil(lambda: _cells(window, 0)["Alert"] == "acknowledged")
    recent = window.alerts.model()
    status = [c.header for c in ALERT_COLUMNS].index("Status")
    assert recent.index(0, status).data() == "acknowledged"
    assert recent.index(0, 0).data(ROW_ROLE).alert.alert_id == alert.alert_id


def test_selecting_a_patient_shows_risk_trends_and_alert_history(
        running: tuple[ClinicService, MainWindow, int], qtbot: Any) -> None:
    clinic, window, port = running
    send(port, *history("PV1"))
    send(port, oru("PV1", 7, "20260301090000+0000", "8480-6^Systolic^LN||142|mm[Hg]",
                   "8462-4^Diastolic^LN||88|mm[Hg]", "1558-6^Fasting glucose^LN||6.4|mmol/L"))
    send(port, adt("A04", "PV1", "ER", 1))
    qtbot.waitUntil(lambda: window.worklist_model.rowCount() == 1, timeout=10000)
    qtbot.waitUntil(lambda: window.queue.current is not None, timeout=10000)
    window.banner.toggle_details()
    window.banner.dismiss(DismissReason.PATIENT_DECLINED)
    window.show()
    qtbot.waitExposed(window)
    window.worklist.setFocus()
    qtbot.keyClick(window.worklist, Qt.Key.Key_Down)  # keyboard first
    view = window.patient_view
    qtbot.waitUntil(lambda: view.summary is not None, timeout=5000)
    summary = view.summary
    assert "QUIXOTE, Alonso" in view.heading.text() and "PV1 (H)" in view.heading.text()
    assert "Type 2 diabetes risk" in view.risks.text()
    assert summary.scores[0].factors and summary.scores[0].factors[0].words in view.risks.text()
    # The trends, in the card's units: HbA1c 5.9 → 6.2 %, glucose 6.4 mmol/L → mg/dL.
    assert [v for _, v in summary.trends["hba1c"]] == [5.9, 6.2]
    assert summary.trends["sbp"][0][1] == 142 and summary.trends["dbp"][0][1] == 88
    assert round(summary.trends["fpg"][0][1]) == 115
    assert view.canvas is not None and view.canvas.isVisible()
    figure = view.canvas.figure  # type: ignore[attr-defined]
    titles = [ax.get_title(loc="left") for ax in figure.axes]
    assert titles == ["HbA1c (%)", "Fasting glucose (mg/dL)", "BMI (kg/m²)",
                      "Blood pressure (mm Hg)"]
    hba1c = figure.axes[0]
    assert any(line.get_ydata()[0] == 6.5 for line in hba1c.get_lines())  # the threshold
    # The alert history: the decision and what became of it.
    rows = view.history.rows
    assert rows and rows[0].decision == "shown"
    assert rows[0].outcome == "dismissed: patient declined"
    window.close()


def test_status_bar_says_feed_engine_and_problem(
        running: tuple[ClinicService, MainWindow, int], qtbot: Any) -> None:
    clinic, window, port = running
    window.refresh_status()
    assert "</span> Listening on 127.0.0.1:" in window.feed_label.text()
    assert "no message yet" in window.feed_label.text()
    send(port, adt("A08", "ST1", "CLINIC", 1))
    qtbot.waitUntil(lambda: clinic.messages_seen >= 1, timeout=10000)
    window.refresh_status()
    assert "Feed up" in window.feed_label.text() and "last message" in window.feed_label.text()
    assert window.engine_label.text().startswith("Engine onnxruntime")
    window.show_problem("the store is not reachable")
    assert "Problem: the store is not reachable" in window.feed_label.text()
    window.show()
    qtbot.waitExposed(window)
    # Nothing in the status bar is cut: each label gets at least its text's width.
    for label in (window.feed_label, window.engine_label):
        assert label.width() >= label.sizeHint().width() - 2, label.text()
    window.close()


def test_a_workstation_says_it_follows_the_journal(
        running: tuple[ClinicService, MainWindow, int], qtbot: Any) -> None:
    from ui.bridge import Bridge

    clinic, _window, _port = running
    follower = MainWindow(clinic, Bridge(), "the department's change journal",
                          following=True)
    qtbot.addWidget(follower)
    follower.refresh_status()
    assert "</span> Following the department's change journal · no message yet" in \
        follower.feed_label.text()
    follower.queue.clear()


def test_the_worklist_changes_row_by_row_and_keeps_the_selection(qtbot: Any) -> None:
    """Patients coming and going are told to the view as rows removed, changed and added,
    not as a reset: the doctor's selected row stays selected (a reset loses it), and the
    view re-sorts only what changed."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from app.clinic.service import OpenPatient
    from ui.tables import RowsModel, selected_row, table_view

    def patient(n: int) -> OpenPatient:
        return OpenPatient(n, f"PATIENT{n}, Test", "1960-01-01", f"MR{n} (H)",
                           datetime(2026, 6, 1, 8, n, tzinfo=UTC), "adt", f"ER^1^{n}^H")

    holder = QWidget()  # owns the model and the view, as the main window does
    qtbot.addWidget(holder)
    model: RowsModel[OpenPatient] = RowsModel(WORKLIST_COLUMNS, holder)
    view = table_view(model, "Today's patients", sort_column=4)
    view.setParent(holder)
    model.set_rows([patient(n) for n in range(1, 5)], key=lambda p: p.patient_id)
    resets: list[bool] = []
    model.modelReset.connect(lambda: resets.append(True))
    for row in range(model.rowCount()):
        if view.model().index(row, 0).data(ROW_ROLE).patient_id == 3:
            view.setCurrentIndex(view.model().index(row, 0))
    # Patient 1 leaves, 3 gets a risk, 5 and 6 arrive.
    scored = replace(patient(3), risk=0.87, tier="high", status="alert raised")
    model.set_rows([patient(6), patient(5), patient(4), scored, patient(2)],
                   key=lambda p: p.patient_id)
    assert not resets
    assert sorted(p.patient_id for p in model.rows) == [2, 3, 4, 5, 6]
    assert selected_row(view) == scored  # still selected, with its new values
    # Sorted by the view, by the column chosen: newest arrival first.
    shown = [view.model().index(r, 0).data(ROW_ROLE).patient_id for r in range(5)]
    assert shown == [6, 5, 4, 3, 2]
    # Without a key, the rows are replaced whole.
    model.set_rows([patient(7)])
    assert resets and [p.patient_id for p in model.rows] == [7]


def test_acting_on_a_banner_does_not_wait_for_the_feed(
        running: tuple[ClinicService, MainWindow, int], qtbot: Any) -> None:
    """The GUI thread records what the doctor did, updates the worklist and opens the
    patient view without the lock that scoring and routing hold (a flood keeps that lock busy, and Python's locks
    are not fair: the soak's banners waited behind it until they expired unseen)."""
    import threading

    clinic, window, port = running
    send(port, *history("WL-L"))
    send(port, adt("A04", "WL-L", "ER", 1))
    qtbot.waitUntil(lambda: window.queue.current is not None, timeout=10000)
    held, release, released = threading.Event(), threading.Event(), threading.Event()

    def scoring_a_long_time() -> None:
        with clinic._lock:  # what scoring and routing hold
            held.set()
            release.wait(10)
        released.set()

    holder = threading.Thread(target=scoring_a_long_time)
    holder.start()
    assert held.wait(5)
    try:
        window.banner.acknowledge()
        assert not released.is_set(), "acknowledging waited for the scoring lock"
        # Opening the patient's view scores them beside the feed, not behind it.
        window.show_patient(clinic.open_patients[0].patient_id)
        assert not released.is_set(), "the patient view waited for the scoring lock"
        assert window.patient_view.summary is not None
        assert _cells(window, 0)["Alert"] == "acknowledged" or \
            clinic.open_patients[0].status == "acknowledged"
    finally:
        release.set()
        holder.join()
