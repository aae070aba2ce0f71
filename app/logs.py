"""Logging: one named logger per subsystem, and pseudonyms instead of patient identifiers.

Log lines carry message control IDs, peers and pseudonyms (keyed hashes of identifiers),
never names, MRNs or results. The key is made once per installation and kept in the data
directory, so a pseudonym is stable on one machine and useless anywhere else.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import logging.handlers
import os
import secrets
from pathlib import Path

listener = logging.getLogger("clarion.listener")
inbox = logging.getLogger("clarion.inbox")
ingest = logging.getLogger("clarion.ingest")
store = logging.getLogger("clarion.store")
cli = logging.getLogger("clarion.cli")
alerts = logging.getLogger("clarion.alerts")

_key: bytes = b"clarion-unkeyed"


def load_pseudonym_key(data_dir: Path) -> None:
    """Load (or create) this installation's pseudonym key."""
    global _key
    path = data_dir / "pseudonym.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    _key = path.read_bytes()


def pseudonym_key() -> bytes:
    """The key in use (handed to the processing worker process)."""
    return _key


def set_pseudonym_key(key: bytes) -> None:
    """Use `key` (the parent process's) for pseudonyms in this process."""
    global _key
    _key = key


def pseudonym(value: str, authority: str = "") -> str:
    """A short keyed hash of an identifier, safe to log."""
    digest = hmac.new(_key, f"{authority}\x1f{value}".encode(), hashlib.sha256)
    return "p:" + digest.hexdigest()[:12]


def describe_error(exc: BaseException) -> str:
    """An exception as one line that is safe to log and store: no SQL parameters, no DETAIL.

    Database errors quote the row they failed on (names, MRNs); only the driver's first
    line, which names the constraint or condition, is kept.
    """
    from sqlalchemy.exc import StatementError

    inner: BaseException = exc
    if isinstance(exc, StatementError) and exc.orig is not None:
        inner = exc.orig
    first = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    return f"{type(inner).__name__}: {first}"[:500]


def setup_logging(level: str, log_file: Path | None) -> None:
    """Route Clarion's loggers to stderr and, if given, a rotating file."""
    root = logging.getLogger("clarion")
    root.setLevel(level)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    stream = logging.StreamHandler()
    # Under systemd stderr goes to the journal, which stamps each line itself.
    stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s")
                        if os.environ.get("JOURNAL_STREAM") else formatter)
    root.addHandler(stream)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8")
        rotating.setFormatter(formatter)
        root.addHandler(rotating)
