"""Every shared sample, sent by python-hl7's MLLP client (a peer that is not ours)."""

from __future__ import annotations

from pathlib import Path

import hl7
import hl7.client
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Config
from app.store.models import (
    DiagnosisRecord,
    InboxMessage,
    InboxStatus,
    ObservationRecord,
    PatientIdentifier,
)
from app.store.patients import find_by_identifier, timeline
from integrations.hl7.header import read_header
from integrations.hl7.parse import is_used
from tests.app.helpers import ack_fields, running_service, wait_processed


def test_every_sample_is_acked_and_adt_oru_content_is_stored(
        config: Config, samples: list[Path]) -> None:
    with running_service(config) as (service, port):
        with hl7.client.MLLPClient("127.0.0.1", port) as client:
            for path in samples:
                raw = path.read_bytes()  # as on disk: LF separators, some with a BOM
                ack = ack_fields(client.send_message(raw)[1:-2])
                header = read_header(raw)
                assert ack["MSH"][9].startswith("ACK"), path.name
                assert ack["MSA"][2] == header.control_id, path.name
                assert ack["MSH"][12] == header.version, path.name
                expected = "CA" if header.enhanced_mode else "AA"
                assert ack["MSA"][1] == expected, (path.name, ack)
        wait_processed(service.engine)
        with Session(service.engine) as session:
            rows = session.scalars(select(InboxMessage)).all()
            assert len(rows) == len(samples)
            by_status = {s: sum(r.status == s for r in rows) for s in InboxStatus}
            used = [p for p in samples
                    if is_used(read_header(p.read_bytes()).message_type,
                               read_header(p.read_bytes()).trigger)]
            assert by_status[InboxStatus.PROCESSED] == len(used), [
                (r.control_id, r.last_error) for r in rows if r.status == "failed"]
            assert by_status[InboxStatus.IGNORED] == len(samples) - len(used)
            assert by_status[InboxStatus.FAILED] == 0

            # The ORU of LAB-ORU-1: ten OBX results for patient 10006579 (authority "1").
            [patient] = find_by_identifier(session, "10006579", "1")
            t = timeline(session, patient)
            codes = {o.loinc for o in t.observations}
            assert {"11273-0", "20570-8", "11125-2", "23761-0"} <= codes
            # LAB-ORU-2 is the final (F) of LAB-ORU-1's preliminary (P) hematocrit.
            [hematocrit] = [o for o in t.observations if o.loinc == "20570-8"]
            assert (hematocrit.value_num, hematocrit.units, hematocrit.status) == (39.7, "%", "F")
            history = timeline(session, patient, include_superseded=True).observations
            [prelim] = [o for o in history if o.loinc == "20570-8" and not o.is_current]
            assert (prelim.value_num, prelim.status) == (40.1, "P")
            assert prelim.superseded_by_id == hematocrit.id
            # ORU-R01-RMGEAD: an SN glucose value "^182" with no authority on PID-3.
            [eve] = find_by_identifier(session, "555-44-4444", "")
            glucose = timeline(session, eve).observations[0]
            assert (glucose.value_type, glucose.value_num, glucose.units) == ("SN", 182.0, "mg/dl")
            assert glucose.abnormal_flag == "H"
            # DG1 from the ADT samples, and the A40 merge's surviving identifiers.
            assert session.scalar(select(func.count()).select_from(DiagnosisRecord)) >= 1
            assert session.scalar(select(func.count()).select_from(ObservationRecord)) >= 40
            survivor_ids = {i.value for i in session.scalars(select(PatientIdentifier).where(
                PatientIdentifier.authority == "BCBS"))}
            assert {"12345", "56789", "145", "569"} <= survivor_ids
