"""ECG waveforms in HL7 v2: IHE PCD-01 sample arrays and encapsulated documents.

PCD-01 (IHE PCD Technical Framework, waveform content): an ORU^R01 (or ^W01) whose OBR
is the recording, one `NA` (or `MA`) OBX per lead with the samples as components, the
lead named by its ISO/IEEE 11073-10101 code in OBX-3 (131330^MDC_ECG_LEAD_II^MDC), the
units in OBX-6, and attribute OBXs under the lead's sub-ID (`<channel>.1` …): the sample
rate (MDC_ATTR_SAMP_RATE) and, for dimensionless counts, the resolution
(MDC_ATTR_NU_MSMT_RES). Attributes are recognised by mnemonic and sub-ID, not by numeric
code (public examples send `0^MDC_ATTR_SAMP_RATE`); leads by the 11073 table, where the
numeric code wins over the sender's text.

ED OBXs carry whole documents, base64: HL7 aECG XML (decoded to the same leads), a PDF or
a DICOM ECG waveform object (integrations/hl7/dicom_ecg.py).

A recording that cannot be read as numbers in known units at a known rate is still
returned, with `problems` saying why: the app stores it, quarantined, and the message is
acknowledged like any other.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# numpy is imported where samples are decoded, not here: the receipt path (MLLP, header
# checks, ACKs) imports this module through `parse.is_used` and stays pure Python, as it
# is in the MSI's wine test and on a receiver that only acknowledges.

# ISO/IEEE 11073-10101 ECG leads (partition 2, MDC_ECG_LEAD_* / MDC_ECG_ELEC_POTL_*).
LEAD_CODES = {"131329": "I", "131330": "II", "131331": "V1", "131332": "V2", "131333": "V3",
              "131334": "V4", "131335": "V5", "131336": "V6", "131389": "III",
              "131390": "aVR", "131391": "aVL", "131392": "aVF"}
LEAD_BY_NAME = {name: code for code, name in LEAD_CODES.items()}
_MNEMONIC_LEADS = {f"{prefix}{name.upper()}": name for name in LEAD_BY_NAME
                   for prefix in ("MDC_ECG_LEAD_", "MDC_ECG_ELEC_POTL_")}
# Units of the samples → millivolts per unit.
_MILLIVOLTS = {"MDC_DIM_MILLI_VOLT": 1.0, "266418": 1.0, "MV": 1.0,
               "MDC_DIM_MICRO_VOLT": 1e-3, "266414": 1e-3, "UV": 1e-3, "µV": 1e-3,
               "MDC_DIM_VOLT": 1e3, "V": 1e3}
_DIMENSIONLESS = {"MDC_DIM_DIMLESS", "262656", "1"}
_PER_SECOND = {"MDC_DIM_PER_SEC", "264608", "MDC_DIM_HZ", "266784", "HZ", "/S", "1/S"}
_SECONDS = {"MDC_DIM_SEC": 1.0, "S": 1.0, "MDC_DIM_MILLI_SEC": 1e-3, "MS": 1e-3}
WAVEFORM_TYPES = frozenset({"NA", "MA"})


@dataclass(frozen=True, slots=True)
class Lead:
    """One lead's samples in millivolts."""

    name: str  # I, II, III, aVR, aVL, aVF, V1..V6, or the sender's text if unknown
    code: str  # the 11073 code, "" if the lead is not in the table
    samples: np.ndarray  # float32, mV


@dataclass(frozen=True, slots=True)
class Waveform:
    """One recording of one patient: its leads at one rate, or a document."""

    source: str  # "PCD-01", "aECG", "PDF", "DICOM"
    order_key: str  # the OBR's filler (else placer) order number, as for results
    started_at: datetime | None
    rate_hz: float | None
    leads: tuple[Lead, ...] = ()
    document: bytes = b""  # PDF or DICOM, kept as received
    problems: tuple[str, ...] = ()  # why it cannot be analysed; empty when it can
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. a lead text that disagreed

    @property
    def analysable(self) -> bool:
        return not self.problems and bool(self.leads) and self.rate_hz is not None

    @property
    def seconds(self) -> float:
        if not self.leads or not self.rate_hz:
            return 0.0
        return max(len(lead.samples) for lead in self.leads) / self.rate_hz


def _components(field_value: Any) -> tuple[str, str, str]:
    """(code, text, system) of a CWE field (python-hl7's field, or its text), first
    repetition."""
    parts = str(field_value).split("~")[0].split("^")
    while len(parts) < 3:
        parts.append("")
    return parts[0].strip(), parts[1].strip(), parts[2].strip()


def lead_of(code: str, text: str) -> tuple[str, str, str]:
    """(name, 11073 code, note) of a lead: the numeric code when the table has it, else
    the mnemonic, else the sender's text with no code."""
    from_code = LEAD_CODES.get(code)
    from_text = _MNEMONIC_LEADS.get(text.upper())
    if from_code:
        note = "" if from_text in (None, from_code) else \
            f"OBX-3 text {text} disagrees with code {code}; read as lead {from_code}"
        return from_code, code, note
    if from_text:
        return from_text, LEAD_BY_NAME[from_text], ""
    return text or code or "unknown", "", ""


def _numbers(raw: str, separators: str = "^~") -> np.ndarray | None:
    """The samples of an NA (components) or MA (repetitions of components) value;
    `separators`: the message's component and repetition separators (MSH-2)."""
    import numpy as np

    component, repetition = separators[0], separators[1]
    text = raw.replace(repetition, component).strip(component)
    if not text:
        return None
    try:
        return np.array(text.split(component), dtype=np.float64)
    except ValueError:
        return None


def set_samples_aside(text: str) -> tuple[str, dict[str, str]]:
    """`text` with the sample arrays of its NA/MA OBXs replaced by short tokens, and the
    arrays by token. A 30-s two-lead strip is 21,600 components; the general parser took
    139 ms to split them into objects, and the samples are read with one NumPy call."""
    if len(text) < 8 or "OBX" not in text:
        return text, {}
    field = text[3]
    aside: dict[str, str] = {}
    lines = text.split("\r")
    for index, line in enumerate(lines):
        if not line.startswith("OBX" + field):
            continue
        parts = line.split(field, 6)
        if len(parts) > 5 and parts[2].strip().upper() in WAVEFORM_TYPES and len(parts[5]) > 64:
            token = f"CLARIONSAMPLES{len(aside)}"
            aside[token] = parts[5]
            parts[5] = token
            lines[index] = field.join(parts)
    return ("\r".join(lines), aside) if aside else (text, {})


@dataclass
class _Channel:
    sub_id: str
    name: str
    code: str
    units: str
    raw: str
    started_at: datetime | None
    rate: tuple[str, str] | None = None  # (value, units)
    resolution: tuple[str, str] | None = None
    note: str = ""


def _rate_hz(value: str, units: str) -> tuple[float | None, str]:
    try:
        number = float(value)
    except ValueError:
        return None, f"sample rate {value!r} is not a number"
    key = units.upper()
    if number <= 0:
        return None, f"sample rate {number} is not positive"
    if key in _SECONDS and number < 1:
        return 1.0 / (number * _SECONDS[key]), ""  # a sample period
    if key in _PER_SECOND or (not key and 50 <= number <= 20_000):
        return number, ""
    return None, f"sample rate units {units or '(none)'} are not per second"


class WaveformGroup:
    """The waveform OBXs under one OBR, collected in order and read at the end."""

    def __init__(self, order_key: str, started_at: datetime | None) -> None:
        self.order_key = order_key
        self.started_at = started_at
        self._channels: list[_Channel] = []
        self.separators = "^~"  # the message's component and repetition separators
        self._attributes: list[tuple[str, str, str, str]] = []  # sub-ID, mnemonic, value, units
        self.documents: list[Waveform] = []

    def add_samples(self, obx_3: Any, sub_id: str, raw_value: str, units: str,
                    observed_at: datetime | None) -> None:
        code, text, _ = _components(obx_3)
        name, lead_code, note = lead_of(code, text)
        self._channels.append(_Channel(sub_id, name, lead_code, units, raw_value,
                                       observed_at or self.started_at, note=note))

    def add_attribute(self, mnemonic: str, sub_id: str, value: str, units: str) -> None:
        self._attributes.append((sub_id, mnemonic.upper(), value.strip(), units))

    def add_document(self, data_type: str, subtype: str, encoding: str, data: str,
                     observed_at: datetime | None) -> None:
        when = observed_at or self.started_at
        if encoding.upper() not in ("BASE64", "B64"):
            self.documents.append(Waveform("document", self.order_key, when, None, problems=(
                f"encapsulated data in {encoding or 'no'} encoding; only Base64 is read",)))
            return
        try:
            payload = base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError) as exc:
            self.documents.append(Waveform("document", self.order_key, when, None,
                                           problems=(f"Base64 data does not decode: {exc}",)))
            return
        kind = subtype.upper()
        if kind == "PDF" or payload.startswith(b"%PDF"):
            self.documents.append(Waveform("PDF", self.order_key, when, None, document=payload,
                                           problems=("a PDF is stored and listed, not analysed",)))
        elif kind in ("DICOM", "DCM") or payload[128:132] == b"DICM":
            from integrations.hl7.dicom_ecg import parse_dicom_ecg

            self.documents.append(parse_dicom_ecg(payload, self.order_key, when))
        else:
            from integrations.hl7.aecg import parse_aecg

            self.documents.append(parse_aecg(payload, self.order_key, when))

    def waveforms(self) -> list[Waveform]:
        """The group's recordings: one for its sample arrays, one per document."""
        found = list(self.documents)
        if self._channels:
            found.insert(0, self._assemble())
        return found

    def _attribute(self, channel: _Channel, mnemonic: str) -> tuple[str, str] | None:
        """The channel's own attribute (sub-ID under the channel's), else the group's only
        one (some senders give one rate for every lead)."""
        own = [(v, u) for s, m, v, u in self._attributes
               if m == mnemonic and channel.sub_id and s.startswith(channel.sub_id + ".")]
        if own:
            return own[0]
        shared = [(v, u) for _s, m, v, u in self._attributes if m == mnemonic]
        return shared[0] if len(shared) == 1 or len(set(shared)) == 1 else None

    def _assemble(self) -> Waveform:
        problems: list[str] = []
        notes = [c.note for c in self._channels if c.note]
        leads, rates = [], set()
        for channel in self._channels:
            label = f"lead {channel.name} (OBX sub-ID {channel.sub_id or 'none'})"
            samples = _numbers(channel.raw, self.separators)
            if samples is None:
                problems.append(f"{label}: the samples are not numbers")
                continue
            rate_attr = self._attribute(channel, "MDC_ATTR_SAMP_RATE")
            if rate_attr is None:
                problems.append(f"{label}: no MDC_ATTR_SAMP_RATE attribute (sample rate)")
            else:
                rate, why = _rate_hz(*rate_attr)
                if rate is None:
                    problems.append(f"{label}: {why}")
                else:
                    rates.add(rate)
            units = channel.units.upper()
            if not units:
                problems.append(f"{label}: no units (OBX-6)")
                continue
            if units in _MILLIVOLTS:
                scale = _MILLIVOLTS[units]
            elif units in _DIMENSIONLESS:
                resolution = self._attribute(channel, "MDC_ATTR_NU_MSMT_RES")
                res_units = resolution[1].upper() if resolution else ""
                if resolution is None or res_units not in _MILLIVOLTS:
                    problems.append(f"{label}: counts without a resolution in volts "
                                    "(MDC_ATTR_NU_MSMT_RES in mV or uV)")
                    continue
                try:
                    scale = float(resolution[0]) * _MILLIVOLTS[res_units]
                except ValueError:
                    problems.append(f"{label}: resolution {resolution[0]!r} is not a number")
                    continue
            else:
                problems.append(f"{label}: units {channel.units or '(none)'} are not a voltage")
                continue
            leads.append(Lead(channel.name, channel.code, (samples * scale).astype("float32")))
        if len(rates) > 1:
            problems.append(f"leads at different sample rates ({sorted(rates)} Hz)")
        rate_hz = rates.pop() if len(rates) == 1 else None
        started = min((c.started_at for c in self._channels if c.started_at), default=None)
        return Waveform("PCD-01", self.order_key, started, rate_hz, tuple(leads),
                        problems=tuple(problems), notes=tuple(notes))


def is_attribute(obx_3: Any) -> str:
    """The MDC_ATTR_* mnemonic an OBX-3 names (by text, any numeric code), else ""."""
    if "MDC_ATTR_" not in str(obx_3).upper():  # every result that is not an ECG's
        return ""
    code, text, _ = _components(obx_3)
    for part in (text, code):
        if part.upper().startswith("MDC_ATTR_"):
            return part.upper()
    return ""


def is_ecg_document(subtype: str, data_type: str) -> bool:
    """An ED value Clarion reads as an ECG recording (aECG XML, PDF, DICOM)."""
    return subtype.upper() in ("XML", "PDF", "DICOM", "DCM") or \
        data_type.upper() in ("APPLICATION", "AP", "TEXT", "MULTIPART")


# ---- writing (tests, the demo and the benchmarks turn WFDB records into messages) ------

def pcd01_observations(leads: list[tuple[str, np.ndarray]], rate_hz: float,
                       started: str, first_set_id: int = 1) -> list[str]:
    """OBX segments for `leads` ((name, samples in mV)) in PCD-01 form: an NA OBX per lead
    in microvolts (integers: a third of the text of millivolts with decimals), then its
    sample rate under sub-ID `<channel>.1`."""
    import numpy as np

    segments = []
    set_id = first_set_id
    for index, (name, samples) in enumerate(leads, start=1):
        code = LEAD_BY_NAME.get("II" if name == "MLII" else name, "")
        mnemonic = f"MDC_ECG_LEAD_{('II' if name == 'MLII' else name).upper()}"
        channel = f"1.1.1.{index}"
        values = "^".join(str(int(v)) for v in np.rint(np.asarray(samples) * 1000.0))
        segments.append(f"OBX|{set_id}|NA|{code}^{mnemonic}^MDC|{channel}|{values}|"
                        f"266414^MDC_DIM_MICRO_VOLT^MDC|||||F|||{started}")
        segments.append(f"OBX|{set_id + 1}|NM|^MDC_ATTR_SAMP_RATE^MDC|{channel}.1|"
                        f"{rate_hz:g}|264608^MDC_DIM_PER_SEC^MDC|||||F")
        set_id += 2
    return segments


def oru_waveform(patient_id: str, control_id: str, leads: list[tuple[str, np.ndarray]],
                 rate_hz: float, started: str, *, sender: str = "ECGCART",
                 order: str = "", trigger: str = "R01", family: str = "",
                 given: str = "", location: str = "") -> str:
    """A whole ORU^R01 (or ^W01) PCD-01 message for one recording, CR-separated."""
    order = order or f"ECG{control_id}"
    segments = [
        f"MSH|^~\\&|{sender}|CARDIO|CLARION|HOSP|{started}||ORU^{trigger}^ORU_{trigger}|"
        f"{control_id}|P|2.6|||AL|NE||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376."
        "1.6.1.1.1^ISO",
        f"PID|1||{patient_id}^^^HOSP^MR||{family}^{given}",
        *( [f"PV1|1|O|{location}"] if location else []),
        f"OBR|1|{order}|{order}|131328^MDC_ECG_LEAD_CONFIG^MDC^11524-6^EKG study^LN|||"
        f"{started}",
        *pcd01_observations(leads, rate_hz, started),
    ]
    return "\r".join(segments) + "\r"
