"""A department's store over TLS with `sslmode=verify-full` (docs/department.md): a real
PostgreSQL server of its own, started for this module with TLS on and plain connections
refused, its certificate from a test CA. Clarion's store opens and migrates through it;
a wrong host name, a certificate from another CA, and a plain connection are refused.

Skipped, with the reason, where PostgreSQL's server binaries are not installed (the
machine's `postgresql` package; .ci/run's machine has them)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.store.db import open_store
from tests.app.tls_certs import make_pki

BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None) \
    if Path("/usr/lib/postgresql").exists() else None
pytestmark = [pytest.mark.postgres, pytest.mark.skipif(
    BIN is None or not (BIN / "initdb").exists(),
    reason="PostgreSQL's server binaries are not installed (apt-get install postgresql)")]


def _as_server_user(*command: str | Path) -> list[str]:
    """initdb and the server refuse to run as root: as `postgres` there."""
    args = [str(c) for c in command]
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, object]]:
    assert BIN is not None
    folder = Path(tempfile.mkdtemp(prefix="clarion-pg-tls-"))  # the server user reads it
    data = folder / "data"
    pki = make_pki(folder)
    (folder / "other").mkdir()
    other = make_pki(folder / "other")  # a CA that signed nothing of this server's
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        for path in folder.rglob("*"):
            shutil.chown(path, "postgres")
    (folder / "server.key").chmod(0o600)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(_as_server_user(BIN / "initdb", "-D", data, "-U", "postgres",
                                   "--auth=trust"), check=True, capture_output=True)
    (data / "pg_hba.conf").write_text(
        "local all all trust\n"
        "hostssl all all 127.0.0.1/32 trust\n"
        "host all all 127.0.0.1/32 reject\n")  # TLS or nothing
    options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c ssl=on "
               f"-c ssl_cert_file={folder / 'server.crt'} "
               f"-c ssl_key_file={folder / 'server.key'}")
    subprocess.run(_as_server_user(BIN / "pg_ctl", "-D", data, "-o", options, "-w",
                                   "-l", folder / "server.log", "start"),
                   check=True, capture_output=True, timeout=60)
    try:
        yield {"port": port, "ca": pki["ca"].with_suffix(".crt"),
               "other_ca": other["ca"].with_suffix(".crt")}
    finally:
        subprocess.run(_as_server_user(BIN / "pg_ctl", "-D", data, "-m", "immediate",
                                       "stop"), capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _url(server: dict[str, object], host: str = "localhost", **query: object) -> str:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return f"postgresql+psycopg://postgres@{host}:{server['port']}/postgres?{params}"


def test_the_store_opens_and_migrates_with_verify_full(server: dict[str, object]) -> None:
    engine = open_store(_url(server, sslmode="verify-full", sslrootcert=server["ca"]))
    try:
        with engine.connect() as conn:
            assert conn.scalar(text(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")) is True
            assert conn.scalar(text("SELECT count(*) FROM inbox_messages")) == 0  # migrated
    finally:
        engine.dispose()


@pytest.mark.parametrize(("how", "refusal"), [
    ("a name the certificate does not carry", "does not match host name"),
    ("a certificate from another CA", "SSL error"),  # same CA name, other key
    ("no TLS", "pg_hba.conf rejects connection"),
])
def test_what_verify_full_and_the_server_refuse(server: dict[str, object], how: str,
                                                refusal: str) -> None:
    if how.startswith("a name"):  # the address is right, the name is not
        url = _url(server, host="db.wrong.example", hostaddr="127.0.0.1",
                   sslmode="verify-full", sslrootcert=server["ca"])
    elif how.startswith("a certificate"):
        url = _url(server, sslmode="verify-full", sslrootcert=server["other_ca"])
    else:
        url = _url(server, sslmode="disable")
    with pytest.raises(OperationalError) as refused:
        open_store(url).dispose()
    assert refusal in str(refused.value), str(refused.value)
