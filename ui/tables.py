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
)

Row = TypeVar("Row")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_ROLE = Qt.ItemDataRole.UserRole + 2
Index = QModelIndex | QPersistentModelIndex
RESIZE_ROWS = 40
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

    def __init__(self, columns: Sequence[Column[Row]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.rows: list[Row] = []

    def set_rows(self, rows: Sequence[Row], key: Callable[[Row], Any] | None = None) -> None:
        """Replace the rows. With `key`, rows that are the same ones in the same order
        (only their values changed) are updated in place: the view keeps its selection
        and scroll position and redraws only what changed, instead of a reset."""
        rows = list(rows)
        if key is not None and len(rows) == len(self.rows) and \
                all(key(a) == key(b) for a, b in zip(rows, self.rows, strict=True)):
            changed = [i for i, (a, b) in enumerate(zip(rows, self.rows, strict=True))
                       if a != b]
            self.rows = rows
            if changed:
                self.dataChanged.emit(self.index(min(changed), 0),
                                      self.index(max(changed), len(self.columns) - 1))
            return
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

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
        if not index.isValid() or index.row() >= len(self.rows):
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
    # whatever is painting now (a banner) — not on every change of a value or every new
    # row, which would measure every row each time.
    fit = QTimer(view, singleShot=True, interval=0)
    fit.timeout.connect(lambda: fit_columns(view, (*stretch, *whole)))
    model.modelReset.connect(fit.start)
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
