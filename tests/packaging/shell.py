"""Running the packaging tools in the tests: the command's whole story on failure."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path


def sh(*command: str | Path, check: bool = True, env: dict[str, str] | None = None,
       timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run `command` to its end, its output captured in files, not pipes: what it leaves
    running (wine's services, on a wineserver that stays up) would hold a pipe open and
    the wait for its end would never finish."""
    # Named files, stdin inherited: with unnamed temporary files and /dev/null as stdin,
    # the MSI's CPython under wine failed at "init_sys_streams" (invalid handle).
    with tempfile.NamedTemporaryFile() as out, tempfile.NamedTemporaryFile() as err:
        done = subprocess.run([str(c) for c in command], stdout=out, stderr=err, env=env,
                              timeout=timeout)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} exited {done.returncode}:\n"
                             f"{stdout[-3000:]}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(done.args, done.returncode, stdout, stderr)
