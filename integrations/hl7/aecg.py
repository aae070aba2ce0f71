"""HL7 annotated ECG (aECG, HL7 v3 XML; FDA's format for resting ECGs) to leads and back.

The rhythm data is the first `series`: a `sequenceSet` whose TIME_ABSOLUTE (or
TIME_RELATIVE) sequence gives the sampling increment, and one sequence per lead, coded
MDC_ECG_LEAD_*, whose SLIST_PQ value is `origin + scale * digits` in the units of origin
and scale (usually uV).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

import numpy as np

from integrations.hl7.waveform import _MILLIVOLTS, LEAD_BY_NAME, Lead, Waveform, lead_of

NS = "urn:hl7-org:v3"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def parse_aecg(payload: bytes, order_key: str, started_at: datetime | None) -> Waveform:
    """An aECG document → a `Waveform` (with `problems` where it cannot be read)."""
    try:
        root = ET.fromstring(payload)  # noqa: S314 - a document from the hospital's feed
    except ET.ParseError as exc:
        return Waveform("aECG", order_key, started_at, None,
                        problems=(f"the encapsulated document is not XML: {exc}",))
    if not root.tag.endswith("AnnotatedECG"):
        return Waveform("aECG", order_key, started_at, None, problems=(
            f"the encapsulated XML is {root.tag.split('}')[-1]}, not an HL7 AnnotatedECG",))
    series = root.find(f".//{_q('series')}")
    if series is None:
        return Waveform("aECG", order_key, started_at, None,
                        problems=("the AnnotatedECG has no series",))
    rate_hz: float | None = None
    leads: list[Lead] = []
    problems: list[str] = []
    notes: list[str] = []
    sequence_set = series.find(f".//{_q('sequenceSet')}")
    for sequence in (sequence_set.iter(_q("sequence")) if sequence_set is not None else []):
        code = sequence.find(_q("code"))
        value = sequence.find(_q("value"))
        if code is None or value is None:
            continue
        name = code.get("code", "")
        if name.startswith("TIME_"):
            increment = value.find(_q("increment"))
            if increment is not None:
                step = float(increment.get("value", "0")) * _TIME_UNITS.get(
                    increment.get("unit", "s"), 0.0)
                rate_hz = 1.0 / step if step > 0 else None
            continue
        lead, lead_code, note = lead_of("", name)
        if note:
            notes.append(note)
        origin, scale = value.find(_q("origin")), value.find(_q("scale"))
        digits = value.find(_q("digits"))
        if scale is None or digits is None or digits.text is None:
            problems.append(f"lead {lead}: no scale or digits")
            continue
        unit = scale.get("unit", "")
        millivolts = _MILLIVOLTS.get(unit.upper(), _MILLIVOLTS.get(unit))
        if millivolts is None:
            problems.append(f"lead {lead}: units {unit or '(none)'} are not a voltage")
            continue
        numbers = np.array(digits.text.split(), dtype=np.float64)
        base = float(origin.get("value", "0")) if origin is not None else 0.0
        samples = (base + float(scale.get("value", "1")) * numbers) * millivolts
        leads.append(Lead(lead, lead_code, samples.astype(np.float32)))
    if rate_hz is None:
        problems.append("no sampling increment (TIME_ABSOLUTE or TIME_RELATIVE sequence)")
    if not leads:
        problems.append("no lead sequences")
    return Waveform("aECG", order_key, started_at, rate_hz, tuple(leads),
                    problems=tuple(problems), notes=tuple(notes))


def write_aecg(leads: list[tuple[str, np.ndarray]], rate_hz: float, started: str) -> bytes:
    """A minimal AnnotatedECG with one rhythm series (tests and the demo)."""
    ET.register_namespace("", NS)
    ET.register_namespace("xsi", _XSI)
    root = ET.Element(_q("AnnotatedECG"))
    ET.SubElement(root, _q("code"), code="93000", codeSystem="2.16.840.1.113883.6.12")
    series = ET.SubElement(ET.SubElement(root, _q("component")), _q("series"))
    sequence_set = ET.SubElement(ET.SubElement(series, _q("component")), _q("sequenceSet"))

    def sequence(code: str) -> ET.Element:
        element = ET.SubElement(ET.SubElement(sequence_set, _q("component")), _q("sequence"))
        ET.SubElement(element, _q("code"), code=code, codeSystem="2.16.840.1.113883.6.24")
        return element

    time = ET.SubElement(sequence("TIME_ABSOLUTE"), _q("value"),
                         {f"{{{_XSI}}}type": "GLIST_TS"})
    ET.SubElement(time, _q("head"), value=started)
    ET.SubElement(time, _q("increment"), value=f"{1.0 / rate_hz:.6g}", unit="s")
    for name, samples in leads:
        lead = "II" if name == "MLII" else name
        code = f"MDC_ECG_LEAD_{lead.upper()}" if lead in LEAD_BY_NAME else lead
        value = ET.SubElement(sequence(code), _q("value"), {f"{{{_XSI}}}type": "SLIST_PQ"})
        ET.SubElement(value, _q("origin"), value="0", unit="uV")
        ET.SubElement(value, _q("scale"), value="1", unit="uV")
        digits = ET.SubElement(value, _q("digits"))
        digits.text = " ".join(str(int(v)) for v in np.rint(np.asarray(samples) * 1000.0))
    return ET.tostring(root, xml_declaration=True, encoding="utf-8")
