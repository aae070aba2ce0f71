"""PySide6 user interface (tray, banner, patient list). The core never imports this package."""
