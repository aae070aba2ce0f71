"""Property-based fuzzing of framing and segment content against a live listener.

The server never dies; every complete frame is answered, in order; what cannot be
answered (a frame never finished) closes nothing but that connection.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Config
from app.ingest.service import IngestService
from app.store.models import InboxMessage
from integrations.mllp import MllpClient, frame
from tests.app.helpers import ack_fields, running_service, wait_processed

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IngestService, int]]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    config = Config()
    config.paths.data_dir = str(folder)
    config.database.url = f"sqlite:///{folder / 'fuzz.db'}"
    config.listener.port = 0
    config.listener.idle_timeout_s = 5
    config.ingest.feed_timezone = "UTC"
    with running_service(config) as live:
        yield live


def _healthy(port: int) -> None:
    with MllpClient("127.0.0.1", port, timeout=10) as client:
        ack = ack_fields(client.send(b"MSH|^~\\&|L|H|C|W|2026||ADT^A08|HEALTH|P|2.5\r"
                                     b"PID|1||H1^^^H^MR"))
        assert ack["MSA"][1] == "AA"


def _read_acks(sock: socket.socket, count: int) -> list[bytes]:
    buffer, acks = b"", []
    while len(acks) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
        while b"\x1c" in buffer:
            start = buffer.index(b"\x0b")
            end = buffer.index(b"\x1c")
            acks.append(buffer[start + 1:end])
            buffer = buffer[end + 2:]
    return acks


no_frame_bytes = st.binary(max_size=200).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))


@FUZZ
@given(payloads=st.lists(no_frame_bytes, min_size=1, max_size=5),
       junk=st.lists(no_frame_bytes, min_size=5, max_size=5))
def test_every_complete_frame_is_answered_in_order(live: tuple[IngestService, int],
                                                   payloads: list[bytes],
                                                   junk: list[bytes]) -> None:
    _, port = live
    stream = b"".join(j + frame(p) for j, p in zip(junk, payloads, strict=False))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(stream)
        acks = _read_acks(sock, len(payloads))
    assert len(acks) == len(payloads)
    for ack in acks:
        assert ack_fields(ack)["MSA"][1] in ("AA", "AE", "AR", "CA", "CE", "CR")
    _healthy(port)


@FUZZ
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_kill_the_server(live: tuple[IngestService, int],
                                               data: bytes) -> None:
    _, port = live
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
    _healthy(port)


hl7_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                          blacklist_characters="\x0b\x1c\r\n"), max_size=40)


@FUZZ
@given(mrn=hl7_text, name=hl7_text, code=hl7_text, value_type=st.sampled_from(
    ["NM", "SN", "ST", "CWE", "TX", "ED", "XX", ""]), value=hl7_text, ts=hl7_text,
    trigger=st.sampled_from(["R01", "A01", "A02", "A03", "A08", "A40", "A11"]))
def test_segment_content_is_acked_and_never_left_unprocessed(
        live: tuple[IngestService, int], mrn: str, name: str, code: str, value_type: str,
        value: str, ts: str, trigger: str) -> None:
    service, port = live
    mtype = "ORU" if trigger == "R01" else "ADT"
    control = f"FZ-{abs(hash((mrn, name, code, value_type, value, ts, trigger)))}"
    msg = "\r".join([
        f"MSH|^~\\&|FUZZ|H|C|W|20260101||{mtype}^{trigger}|{control}|P|2.5||||||UNICODE UTF-8",
        f"PID|1||{mrn}^^^H^MR||{name}||{ts}", f"PV1|1|I|{name}||||||||||||||||{mrn}",
        f"MRG|{name}^^^H", f"OBR|1||{code}|X|||{ts}",
        f"OBX|1|{value_type}|{code}^x^LN||{value}|{name}|||||F|||{ts}",
        f"DG1|1||{code}^{name}^I10||{ts}"]).encode("utf-8")
    with MllpClient("127.0.0.1", port, timeout=10) as client:
        ack = ack_fields(client.send(msg))
    assert ack["MSA"][1] == "AA" and ack["MSA"][2] == control
    wait_processed(service.engine)
    with Session(service.engine) as s:
        row = s.scalars(select(InboxMessage).where(InboxMessage.control_id == control)).one()
        # Failing is allowed only for content the parser refuses, never for a crash.
        assert row.status == "processed" or (
            row.status == "failed" and row.last_error.startswith("content error")), row.last_error
        assert s.scalar(select(func.count()).where(InboxMessage.status == "received")) == 0
