"""START_SERVICE=1: make the listener service start with Windows, and start it now (run
by the installer with the embedded Python; standard library only)."""

import subprocess
import sys

SERVICE = "ClarionListener"

if __name__ == "__main__":
    subprocess.run(["sc.exe", "config", SERVICE, "start=", "auto"], check=True)
    sys.exit(subprocess.run(["sc.exe", "start", SERVICE]).returncode and 0)
