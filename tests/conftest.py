"""Shared fixtures: real SQLite files, the real PostgreSQL server, real sockets."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import logs
from app.config import Config

POSTGRES_ENV = "CLARION_TEST_POSTGRES_URL"
SAMPLES = Path(os.environ.get(
    "CLARION_SAMPLES_DIR",
    Path(__file__).resolve().parents[2] / "shared" / "data" / "hl7-samples"))


@pytest.fixture(scope="session", autouse=True)
def _no_machine_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """This machine's own /etc/clarion/clarion.toml (a package test installs one) must
    not change the tests' configuration: every load, in process or in a child process,
    looks for the machine file in an empty folder unless a test says otherwise."""
    absent = tmp_path_factory.mktemp("machine") / "clarion.toml"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLARION_MACHINE_CONFIG", str(absent))
        patch.setattr("app.config.PLATFORM_MACHINE_CONFIG", absent)
        yield


@pytest.fixture(scope="session", autouse=True)
def _pseudonym_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    logs.load_pseudonym_key(tmp_path_factory.mktemp("key"))


@pytest.fixture
def samples() -> list[Path]:
    """The shared HL7 sample messages (read in place, never copied)."""
    files = sorted(SAMPLES.glob("*.hl7"))
    if not files:
        pytest.skip(f"HL7 samples not found at {SAMPLES} (../shared/data/hl7-samples)")
    return files


def _postgres_schema_url(base: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store: a SQLite file, and a schema on the real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'clarion.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests need a server URL "
                    "(.ci/run sets it)")
    yield from _postgres_schema_url(base)


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Config:
    """Defaults, a throwaway data dir, the test store, and an ephemeral port."""
    cfg = Config()
    cfg.paths.data_dir = str(tmp_path / "data")
    cfg.database.url = db_url
    cfg.listener.port = 0
    cfg.listener.shutdown_grace_s = 2.0
    cfg.ingest.retry_backoff_s = 0.05
    cfg.ingest.feed_timezone = "UTC"
    return cfg


@pytest.fixture(autouse=True)
def _close_clarion_log_handlers() -> Iterator[None]:
    """Commands run in-process install log handlers; close them after each test."""
    yield
    import logging

    root = logging.getLogger("clarion")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
