"""Tables are models, not strings: rows of core objects in a `QAbstractTableModel`, each
column a `Column` that says how to show, sort, colour and read out a row.

The views sort through a `QSortFilterProxyModel` (by each column's sort key, not its
text), select whole rows, and a screen reader reads each cell as its accessible text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ui.qt import (
    QAbstractItemView,
    QAbstractTableModel,
    QColor,
    QHeaderView,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTableView,
    QTimer,
    QWidget,
    Signal,
)

Row = TypeVar("Row")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_ROLE = Qt.ItemDataRole.UserRole + 2
Index = QModelIndex | QPersistentModelIndex
RESIZE_ROWS = 40
FIT_EVERY_MS = 1000  # columns fit at most this often while rows are added
MAX_COLUMN_CHARS = 16  # a column is at most about this many wide characters


@dataclass(frozen=True)
class Column(Generic[Row]):
    """One column: its header, the text of a cell, and optionally its sort key, colour,
    tooltip and the words a screen reader says (default: the text)."""

    header: str
    text: Callable[[Row], str]
    sort: Callable[[Row], Any] | None = None
    colour: Callable[[Row], str | None] | None = None
    tooltip: Callable[[Row], str] | None = None
    spoken: Callable[[Row], str] | None = None


class RowsModel(QAbstractTableModel, Generic[Row]):
    """A list of rows shown through columns; `set_rows` replaces them."""

    #: `set_rows` added rows to those already shown (not `prepend`: tables whose rows
    #: come one at a time have fixed widths).
    rows_added = Signal()

    def __init__(self, columns: Sequence[Column[Row]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.rows: list[Row] = []

    def set_rows(self, rows: Sequence[Row], key: Callable[[Row], Any] | None = None) -> None:
        """Replace the rows. With `key`, the change is told row by row instead of as a
        reset: rows whose key is gone are removed, rows that stay are updated in place
        (where they are; the view sorts them), new ones are added at the end. The view
        keeps its selection and scroll position, and re-sorts, re-measures and redraws
        only what changed: a reset of 350 rows sorted by a column cost the GUI thread
        ~0.2 s, every 100 ms, while the soak's patients came and went."""
        rows = list(rows)
        if key is None:
            self.beginResetModel()
            self.rows = rows
            self.endResetModel()
            return
        wanted = {key(row): row for row in rows}
        # Gone: removed in runs, from the end so that earlier positions stay valid.
        gone = [i for i, row in enumerate(self.rows) if key(row) not in wanted]
        for first, last in reversed(_runs(gone)):
            self.beginRemoveRows(QModelIndex(), first, last)
            del self.rows[first:last + 1]
            self.endRemoveRows()
        kept = {key(row) for row in self.rows}
        changed = []
        for i, row in enumerate(self.rows):
            new = wanted[key(row)]
            if new != row:
                self.rows[i] = new
                changed.append(i)
        for first, last in _runs(changed):
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(self.columns) - 1))
        added = [row for row in rows if key(row) not in kept]
        if added:
            self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows) + len(added) - 1)
            self.rows.extend(added)
            self.endInsertRows()
            self.rows_added.emit()

    def prepend(self, row: Row, limit: int) -> None:
        """A new first row; the oldest beyond `limit` go."""
        self.beginInsertRows(QModelIndex(), 0, 0)
        self.rows.insert(0, row)
        self.endInsertRows()
        if len(self.rows) > limit:
            self.beginRemoveRows(QModelIndex(), limit, len(self.rows) - 1)
            del self.rows[limit:]
            self.endRemoveRows()

    def row_changed(self, position: int) -> None:
        """The row at `position` changed in place."""
        self.dataChanged.emit(self.index(position, 0),
                              self.index(position, len(self.columns) - 1))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt's
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt's
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt's
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].header
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # The view asks each cell for a dozen roles each time it paints or measures it;
        # the ones not shown here are answered before anything else is looked at.
        if role not in _ROLES or not index.isValid() or index.row() >= len(self.rows):
            return None
        row, column = self.rows[index.row()], self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.text(row)
        if role == SORT_ROLE:
            return column.sort(row) if column.sort else column.text(row)
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.ForegroundRole and column.colour is not None:
            colour = column.colour(row)
            return QColor(colour) if colour else None
        if role == Qt.ItemDataRole.ToolTipRole:  # the whole text, where a cell elides it
            return column.tooltip(row) if column.tooltip is not None else column.text(row)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{column.header}: " + (column.spoken or column.text)(row)
        return None


_ROLES = frozenset(int(r) for r in (
    Qt.ItemDataRole.DisplayRole, SORT_ROLE, ROW_ROLE, Qt.ItemDataRole.ForegroundRole,
    Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole))


def _runs(positions: list[int]) -> list[tuple[int, int]]:
    """Ascending positions as (first, last) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for i in positions:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


class SortProxy(QSortFilterProxyModel):
    """Sorts by each column's sort key; None sorts first."""

    def lessThan(self, left: Index, right: Index) -> bool:  # noqa: N802 - Qt's name
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if a is None or b is None:
            return a is None and b is not None
        try:
            return bool(a < b)
        except TypeError:
            return str(a) < str(b)


def table_view(model: RowsModel[Any], name: str, sort_column: int | None = None,
               descending: bool = True, stretch: Sequence[int] = (),
               whole: Sequence[int] = ()) -> QTableView:
    """A keyboard-first, sortable, row-selecting view of `model`. Columns fit their
    contents; the `stretch` columns share what width is left (and give it back first);
    the `whole` columns are never elided (an MRN cut short could name another patient)."""
    proxy = SortProxy(model)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    view = QTableView()
    view.setModel(proxy)
    view.setAccessibleName(name)
    view.setSortingEnabled(True)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setTabKeyNavigation(False)  # Tab leaves the table; arrows move inside it
    view.setWordWrap(False)
    view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    view.setAlternatingRowColors(True)
    view.verticalHeader().setVisible(False)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    # Fitting columns measures at most this many rows (Qt's own knob), so a long list
    # costs what a short one does.
    header.setResizeContentsPrecision(RESIZE_ROWS)
    for column in stretch:
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
    header.setStretchLastSection(not stretch)
    # Columns fit their contents when the rows are replaced — once per burst, after
    # whatever is painting now (a banner) — and at most once a second while rows come
    # in (a busy feed adds some every 100 ms); not on every change of a value, which
    # would measure the rows each time.
    fit = QTimer(view, singleShot=True, interval=0)
    fit.timeout.connect(lambda: fit_columns(view, (*stretch, *whole)))
    model.modelReset.connect(lambda: fit.start(0))
    model.rows_added.connect(lambda: fit.isActive() or fit.start(FIT_EVERY_MS))
    if sort_column is not None:
        view.sortByColumn(sort_column, Qt.SortOrder.DescendingOrder if descending
                          else Qt.SortOrder.AscendingOrder)
    return view


def selected_row(view: QTableView) -> Any:
    """The core object of the view's current row, or None."""
    index = view.currentIndex()
    return index.data(ROW_ROLE) if index.isValid() else None


def row_at(view: QTableView, row: int) -> Any:
    """The core object shown in the view's `row` (in the view's sorted order)."""
    return view.model().index(row, 0).data(ROW_ROLE)


def fit_columns(view: QTableView, keep: Sequence[int] = ()) -> None:
    """Columns as wide as their contents, but none wider than `MAX_COLUMN_CHARS`
    characters: a long value is elided (its tooltip and screen-reader text keep it
    whole) rather than pushing the table behind a horizontal scroll bar."""
    view.resizeColumnsToContents()
    widest = view.fontMetrics().horizontalAdvance("M" * MAX_COLUMN_CHARS)
    for column in range(view.model().columnCount()):
        if column not in keep and view.columnWidth(column) > widest:
            view.setColumnWidth(column, widest)


def fit_column_to(view: QTableView, column: int, widest: str) -> None:
    """A column as wide as `widest` (text), for tables whose rows come one at a time."""
    margin = 2 * view.style().pixelMetric(view.style().PixelMetric.PM_FocusFrameHMargin) + 12
    view.setColumnWidth(column, view.fontMetrics().horizontalAdvance(widest) + margin)
