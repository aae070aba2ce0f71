"""The `clarion` console script: the core's command line, with the desktop app plugged in.

The core (app/) never imports ui/; this top-layer module hands the Qt runner to it.
"""

from __future__ import annotations

import sys

from app.cli import main as cli_main


def main() -> int:
    from ui.app import run_app
    from ui.dashboard import run_dashboard
    from ui.display import display_problem

    return cli_main(gui=run_app, dashboard=run_dashboard, display=display_problem)


if __name__ == "__main__":
    sys.exit(main())
