"""ECG recordings in the store: compact binary per lead, with rate and units.

Samples are kept as 16-bit integers in microvolts (an ECG spans a few millivolts; 1 uV is
finer than any recorder's resolution) when they fit, else as 32-bit floats in millivolts,
lead after lead, zlib-compressed: a 10-s 12-lead recording at 500 Hz, ~300 kB as HL7
text, is ~120 kB raw and about half that stored.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, insert, select

from app import logs
from app.store.models import WaveformRecord, table_of, utcnow
from integrations.hl7.waveform import Lead, Waveform

_W = table_of(WaveformRecord)


def _encode(leads: Sequence[Lead]) -> tuple[str, bytes]:
    if not leads:
        return "", b""
    joined = np.concatenate([lead.samples for lead in leads]).astype(np.float64)
    microvolts = np.rint(joined * 1000.0)
    if len(microvolts) and np.max(np.abs(microvolts)) < 32_767:
        return "int16-uV-zlib", zlib.compress(microvolts.astype("<i2").tobytes(), 6)
    return "float32-mV-zlib", zlib.compress(joined.astype("<f4").tobytes(), 6)


def _decode(encoding: str, data: bytes, lengths: list[int]) -> list[np.ndarray]:
    if not encoding:
        return []
    raw = zlib.decompress(data)
    if encoding == "int16-uV-zlib":
        flat = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 1000.0
    elif encoding == "float32-mV-zlib":
        flat = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    else:
        raise ValueError(f"unknown waveform encoding {encoding!r}")
    bounds = np.cumsum([0, *lengths])
    return [flat[bounds[i]:bounds[i + 1]] for i in range(len(lengths))]


def status_of(waveform: Waveform) -> str:
    if waveform.source in ("PDF", "DICOM") and waveform.document:
        return "document"
    return "ok" if waveform.analysable else "quarantined"


def store_waveforms(conn: Connection, patient_id: int, encounter_id: int | None,
                    message_id: int, waveforms: Sequence[Waveform]) -> None:
    """Insert a message's recordings. One that cannot be analysed is stored all the same,
    quarantined, with its problems, and logged (message id and reason, no patient data)."""
    rows = []
    for waveform in waveforms:
        encoding, data = _encode(waveform.leads)
        if waveform.document:
            encoding, data = "document", waveform.document
        status = status_of(waveform)
        if status == "quarantined":
            logs.ingest.warning("message %d: %s ECG quarantined, not analysed: %s",
                                message_id, waveform.source, "; ".join(waveform.problems))
        rows.append({
            "patient_id": patient_id, "encounter_id": encounter_id, "message_id": message_id,
            "order_key": waveform.order_key[:200], "source": waveform.source[:16],
            "started_at": waveform.started_at, "rate_hz": waveform.rate_hz,
            "seconds": waveform.seconds,
            "leads": json.dumps([{"name": lead.name, "code": lead.code,
                                  "samples": len(lead.samples)} for lead in waveform.leads]),
            "encoding": encoding, "data": data, "status": status,
            "problems": "\n".join([*waveform.problems, *waveform.notes]),
            "recorded_at": utcnow()})
    if rows:
        conn.execute(insert(_W), rows)


@dataclass(frozen=True, slots=True)
class StoredWaveform:
    """A recording read back from the store."""

    id: int
    patient_id: int
    source: str
    status: str
    started_at: datetime | None
    rate_hz: float | None
    seconds: float
    problems: tuple[str, ...]
    leads: tuple[Lead, ...]

    def lead(self, preferred: Sequence[str]) -> Lead | None:
        """The first of `preferred` the recording has, else its first lead."""
        by_name = {lead.name: lead for lead in self.leads}
        for name in preferred:
            if name in by_name:
                return by_name[name]
        return self.leads[0] if self.leads else None


def _row_to_stored(row: Any, with_samples: bool) -> StoredWaveform:
    meta = json.loads(row.leads)
    arrays = _decode(row.encoding, row.data, [m["samples"] for m in meta]) \
        if with_samples and row.encoding != "document" else []
    leads = tuple(Lead(m["name"], m["code"], arrays[i] if arrays else np.zeros(0, np.float32))
                  for i, m in enumerate(meta))
    return StoredWaveform(row.id, row.patient_id, row.source, row.status,
                          row.started_at, row.rate_hz, row.seconds,
                          tuple(p for p in row.problems.split("\n") if p),
                          leads)


def patient_waveforms(conn: Connection, patient_ids: Sequence[int], *, after_id: int = 0,
                      limit: int = 20, with_samples: bool = True) -> list[StoredWaveform]:
    """The patients' recordings after `after_id`, newest first (at most `limit`)."""
    rows = conn.execute(select(_W).where(_W.c.patient_id.in_(list(patient_ids)),
                                         _W.c.id > after_id)
                        .order_by(_W.c.id.desc()).limit(limit))
    return [_row_to_stored(row, with_samples) for row in rows]


def document(conn: Connection, waveform_id: int) -> tuple[str, bytes] | None:
    """A stored document's kind and bytes (PDF, DICOM), for opening it."""
    row = conn.execute(select(_W.c.source, _W.c.data).where(
        _W.c.id == waveform_id, _W.c.encoding == "document")).first()
    return (row.source, row.data) if row else None
