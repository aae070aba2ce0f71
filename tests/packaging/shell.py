"""Running the packaging tools in the tests: the command's whole story on failure."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import IO


def sh(*command: str | Path, check: bool = True, env: dict[str, str] | None = None,
       timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run `command` to its end and return what it printed.

    Its output comes through pipes (CPython under wine cannot start with a regular file
    as stdout), read by threads, and the wait is for the process, not for the pipes'
    end: what it leaves running (wine's services, on a wineserver that stays up) holds
    them open."""
    process = subprocess.Popen([str(c) for c in command], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    def drain(stream: IO[bytes], into: list[bytes]) -> None:
        with stream:  # closed by its reader at its end, however late that is
            for block in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
                into.append(block)

    readers = [threading.Thread(target=drain, args=(stream, chunks[name]), daemon=True)
               for name, stream in (("out", process.stdout), ("err", process.stderr))]
    for reader in readers:
        reader.start()
    try:
        returncode = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    until = time.monotonic() + 2.0  # the rest of what it wrote; a daemon's pipe may never end
    for reader in readers:
        reader.join(max(0.0, until - time.monotonic()))
    stdout = b"".join(chunks["out"]).decode(errors="replace")
    stderr = b"".join(chunks["err"]).decode(errors="replace")
    if check and returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} exited {returncode}:\n"
                             f"{stdout[-3000:]}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(process.args, returncode, stdout, stderr)
