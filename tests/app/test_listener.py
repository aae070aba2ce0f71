"""The listener against misbehaving peers, duplicates, limits, TLS and storage failure.

These are about the socket side, so they run on SQLite only; the PostgreSQL path of the
same service is covered by the sample and crash tests.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Config
from app.store.models import InboxMessage
from integrations.mllp import MllpClient, frame
from tests.app.helpers import (
    ack_fields,
    hba1c_result,
    hl7_message,
    running_service,
    wait_processed,
)
from tests.app.tls_certs import make_pki


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'clarion.db'}"


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _rows(engine) -> list[InboxMessage]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return list(s.scalars(select(InboxMessage).order_by(InboxMessage.id)))


def test_unreadable_message_gets_ar_and_is_kept(config: Config) -> None:
    with running_service(config) as (service, port), MllpClient("127.0.0.1", port) as client:
        ack = ack_fields(client.send(b"HELLO|this is not hl7\rMSH-ish"))
        assert (ack["MSA"][1], ack["MSA"][2]) == ("AR", "")
        ack = ack_fields(client.send(b"MSH|^|x|y|z|w|2026||ORU^R01|GUESS-1|P|2.5"))
        assert (ack["MSA"][1], ack["MSA"][2]) == ("AR", "GUESS-1")
        assert ack["ERR"][3].startswith("100^")
        rows = _rows(service.engine)
        assert [r.status for r in rows] == ["rejected", "rejected"]
        assert rows[0].raw == b"HELLO|this is not hl7\rMSH-ish"


def test_header_errors_get_ae_or_ar_with_err(config: Config) -> None:
    with running_service(config) as (_, port), MllpClient("127.0.0.1", port) as client:
        no_id = ack_fields(client.send(b"MSH|^~\\&|L|H|C|W|2026||ORU^R01||P|2.5\rPID|1||1"))
        assert no_id["MSA"][1] == "AE" and no_id["ERR"][2] == "MSH^1^10"
        debug = ack_fields(client.send(b"MSH|^~\\&|L|H|C|W|2026||ORU^R01|D1|D|2.5"))
        assert debug["MSA"][1] == "AR" and debug["ERR"][3].startswith("202^")
        v3 = ack_fields(client.send(b"MSH|^~\\&|L|H|C|W|2026||ORU^R01|V1|P|3.0|||AL"))
        assert v3["MSA"][1] == "CR" and v3["ERR"][3].startswith("203^")


def test_resend_gets_the_same_answer_and_is_processed_once(config: Config) -> None:
    with running_service(config) as (service, port), MllpClient("127.0.0.1", port) as client:
        first = ack_fields(client.send(hba1c_result("DUP-1")))
        second = ack_fields(client.send(hba1c_result("DUP-1")))
        assert first["MSA"][:3] == second["MSA"][:3] == ["MSA", "AA", "DUP-1"]
        # Same control id, different content: a different message, kept as well.
        reused = ack_fields(client.send(hba1c_result("DUP-1", value="7.0")))
        assert reused["MSA"][1] == "AA"
        wait_processed(service.engine)
        rows = _rows(service.engine)
        assert [(r.status, r.duplicate_count) for r in rows] == [("processed", 1),
                                                                 ("processed", 0)]


def test_ignored_types_are_stored_and_acked(config: Config) -> None:
    siu = b"MSH|^~\\&|SCH|H|C|W|2026||SIU^S12|S1|P|2.5\rSCH|1"
    with running_service(config) as (service, port), MllpClient("127.0.0.1", port) as client:
        assert ack_fields(client.send(siu))["MSA"][1] == "AA"
        [row] = _rows(service.engine)
        assert (row.status, row.raw) == ("ignored", siu)


def test_oversized_frame_closes_only_that_connection(config: Config) -> None:
    config.listener.max_message_bytes = 4096
    with running_service(config) as (_, port), MllpClient("127.0.0.1", port) as good:
        bad = _connect(port)
        bad.sendall(b"\x0b" + b"X" * 20000)
        assert _closed_by_server(bad)
        bad.close()
        assert ack_fields(good.send(hba1c_result("AFTER-BIG")))["MSA"][1] == "AA"


def test_idle_connection_is_closed(config: Config) -> None:
    config.listener.idle_timeout_s = 0.3
    with running_service(config) as (_, port):
        idle = _connect(port)
        started = time.monotonic()
        assert _closed_by_server(idle)
        assert 0.2 < time.monotonic() - started < 4
        idle.close()


def test_connection_limit(config: Config) -> None:
    config.listener.max_connections = 2
    with running_service(config) as (_, port):
        a, b = MllpClient("127.0.0.1", port), MllpClient("127.0.0.1", port)
        assert ack_fields(a.send(hba1c_result("L1")))["MSA"][1] == "AA"
        assert ack_fields(b.send(hba1c_result("L2")))["MSA"][1] == "AA"
        third = _connect(port)
        assert _closed_by_server(third)
        third.close()
        assert ack_fields(a.send(hba1c_result("L3")))["MSA"][1] == "AA"
        for c in (a, b):
            c.close()


def test_sender_allowlist(config: Config) -> None:
    config.listener.allowed_senders = ["10.0.0.0/8"]
    with running_service(config) as (service, port):
        sock = _connect(port)
        assert _closed_by_server(sock)
        sock.close()
        assert _rows(service.engine) == []


def test_junk_and_restarted_frames(config: Config) -> None:
    with running_service(config) as (service, port):
        sock = _connect(port)
        # Noise before a frame, and an unfinished frame cut short by a new start block.
        sock.sendall(b"noise\r\n" + b"\x0bMSH|^~\\&|half" + frame(hba1c_result("WHOLE")))
        client_buffer = b""
        while b"\x1c" not in client_buffer:
            client_buffer += sock.recv(4096)
        assert ack_fields(client_buffer[1:client_buffer.index(b"\x1c")])["MSA"][2] == "WHOLE"
        sock.close()
        assert [r.control_id for r in _rows(service.engine)] == ["WHOLE"]


def test_connection_closed_mid_frame_stores_nothing(config: Config) -> None:
    with running_service(config) as (service, port):
        sock = _connect(port)
        sock.sendall(b"\x0b" + hba1c_result("CUT")[:40])
        sock.close()
        time.sleep(0.2)
        with MllpClient("127.0.0.1", port) as client:
            assert ack_fields(client.send(hba1c_result("NEXT")))["MSA"][1] == "AA"
        assert [r.control_id for r in _rows(service.engine)] == ["NEXT"]


def test_message_not_stored_is_rejected_so_the_sender_resends(config: Config) -> None:
    with running_service(config) as (service, port), MllpClient("127.0.0.1", port) as client:
        service.inbox.stop()  # storage gone: nothing can be made durable
        ack = ack_fields(client.send(hba1c_result("LOST?")))
        assert ack["MSA"][1] == "AR" and ack["ERR"][3].startswith("207^")
        assert "resend" in ack["ERR"][8]


def test_enhanced_mode_commit_ack(config: Config) -> None:
    msg = b"MSH|^~\\&|L|H|C|W|2026||ADT^A08|E1|P|2.5|||AL|NE\rPID|1||E1^^^H^MR"
    with running_service(config) as (_, port), MllpClient("127.0.0.1", port) as client:
        assert ack_fields(client.send(msg))["MSA"][1:3] == ["CA", "E1"]


def test_tls_with_client_certificates(config: Config, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    config.listener.tls_cert = str(pki["server"].with_suffix(".crt"))
    config.listener.tls_key = str(pki["server"].with_suffix(".key"))
    config.listener.tls_client_ca = str(pki["ca"].with_suffix(".crt"))
    with running_service(config) as (_, port):
        context = ssl.create_default_context(cafile=str(pki["ca"].with_suffix(".crt")))
        context.load_cert_chain(str(pki["client"].with_suffix(".crt")),
                                str(pki["client"].with_suffix(".key")))
        with MllpClient("127.0.0.1", port, ssl_context=context) as client:
            assert ack_fields(client.send(hba1c_result("TLS-1")))["MSA"][1] == "AA"
        # Without a client certificate the handshake is refused.
        anonymous = ssl.create_default_context(cafile=str(pki["ca"].with_suffix(".crt")))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with MllpClient("127.0.0.1", port, ssl_context=anonymous) as client:
                client.send(hba1c_result("TLS-2"))


def test_logs_carry_no_names_or_identifiers(config: Config,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="clarion")
    with running_service(config) as (service, port), MllpClient("127.0.0.1", port) as client:
        # A result value no timing or count in a log line could contain by chance.
        client.send(hba1c_result("PRIV-1", mrn="MRN-SECRET-77", value="6.137913"))
        client.send(hba1c_result("PRIV-1", mrn="MRN-SECRET-77", value="6.137913"))
        client.send(hl7_message("MSH|^~\\&|L|H|C|W|2026||ORU^R01|PRIV-2|P|2.5",
                                "PID|1||MRN-SECRET-77^^^HOSP^MR||Quixote^Alonso",
                                "OBX|1|NM|9-9^x^LN||bad").encode())
        wait_processed(service.engine)
    text = caplog.text
    assert "PRIV-1" in text  # control ids are logged ...
    for secret in ("MRN-SECRET-77", "Quixote", "Alonso", "6.137913"):
        assert secret not in text  # ... names, MRNs and results are not
