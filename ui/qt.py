"""The one import point for Qt: every ui module imports Qt from here, never from PySide6.
matplotlib's Qt canvas too, told to use PySide6 before it looks for a binding."""

import os

os.environ.setdefault("QT_API", "PySide6")

from PySide6.QtCore import (  # noqa: E402, F401
    QAbstractTableModel,
    QByteArray,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    QUrl,
    Signal,
    Slot,
    qInstallMessageHandler,
)
from PySide6.QtGui import (  # noqa: E402, F401
    QAccessible,
    QAccessibleEvent,
    QAction,
    QColor,
    QFont,
    QGuiApplication,
    QIcon,
    QKeySequence,
    QPainter,
    QPixmap,
    QShortcut,
)
from PySide6.QtNetwork import QLocalServer, QLocalSocket  # noqa: E402, F401
from PySide6.QtWidgets import (  # noqa: E402, F401
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStatusBar,
    QSystemTrayIcon,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


def figure_canvas(figure: object) -> "QWidget":
    """matplotlib's Qt canvas for a Figure (imported on first use: matplotlib is slow
    to import and the banner path never needs it)."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

    return FigureCanvasQTAgg(figure)  # type: ignore[no-any-return]


def strip_pixmap(strip: object, width_in: float = 4.3, height_in: float = 1.5) -> "QPixmap":
    """An ECG excerpt (app.ecg.analysis.Strip) drawn by app.charts as a pixmap; matplotlib
    is imported here, on first use."""
    from app.charts import figure_png, strip_figure

    figure = strip_figure(strip.samples, strip.rate_hz, strip.peaks,  # type: ignore[attr-defined]
                          strip.classes, strip.lead, strip.offset_s,  # type: ignore[attr-defined]
                          width_in=width_in, height_in=height_in)
    pixmap = QPixmap()
    pixmap.loadFromData(figure_png(figure))
    return pixmap
