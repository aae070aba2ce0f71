"""A DICOM ECG waveform object (12-lead, General or Ambulatory ECG Waveform Storage) to leads.

pydicom reads the file and its Waveform module: `Dataset.waveform_array` gives a multiplex
group's samples, each channel scaled by its Channel Sensitivity (and correction factor, and
baseline) into the units of its Channel Sensitivity Units (UCUM: uV, mV). The rhythm is
the group with the most samples among those the device recorded (Waveform Originality
ORIGINAL), not a derived median beat. A channel's lead is its Channel Source code: SCP-ECG
(5.6.3-9-n) and MDC (2:n) number the leads alike; its meaning's text where the code is
neither.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any

import numpy as np

from integrations.hl7.waveform import _MILLIVOLTS, LEAD_BY_NAME, Lead, Waveform

# SCP-ECG and MDC term numbers of the twelve leads (DICOM CID 3001); MDC's electrode
# potentials (256 + n) name the same leads.
_LEAD_NUMBERS = {1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6",
                 61: "III", 62: "aVR", 63: "aVL", 64: "aVF"}
_CODE = re.compile(r"^(?:5\.6\.3-9-|2:)(\d+)$")
_BY_TEXT = {name.upper(): name for name in LEAD_BY_NAME}


def parse_dicom_ecg(payload: bytes, order_key: str, started_at: datetime | None) -> Waveform:
    """A DICOM ECG → a `Waveform` of its rhythm leads; where it cannot be read, the document
    kept as received, with the reason (stored and listed, not analysed)."""
    def unread(reason: str) -> Waveform:
        return Waveform("DICOM", order_key, started_at, None, document=payload,
                        problems=(f"a DICOM object that cannot be analysed: {reason}",))

    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:  # a broken install: the object is kept all the same
        return unread("pydicom is not installed (pip install 'pydicom>=3,<3.1')")
    try:
        dataset = pydicom.dcmread(io.BytesIO(payload))
    except InvalidDicomError as exc:
        return unread(f"the file does not read as DICOM ({exc})")
    except Exception as exc:  # noqa: BLE001 - a damaged file from the feed: kept, with why
        return unread(f"the file is damaged ({type(exc).__name__}: {exc})")
    groups = list(dataset.get("WaveformSequence", []))
    if not groups:
        return unread(f"{_sop_class(dataset)} has no waveform")
    recorded = [i for i, g in enumerate(groups) if g.get("WaveformOriginality") == "ORIGINAL"]
    index = max(recorded or range(len(groups)),
                key=lambda i: int(groups[i].get("NumberOfWaveformSamples", 0)))
    group = groups[index]
    rate = float(group.get("SamplingFrequency", 0) or 0)
    try:
        samples = dataset.waveform_array(index)
    except Exception as exc:  # noqa: BLE001 - as above
        return unread(f"its waveform data does not decode ({type(exc).__name__}: {exc})")
    leads: list[Lead] = []
    problems: list[str] = []
    notes: list[str] = []
    for channel, definition in enumerate(group.get("ChannelDefinitionSequence", [])):
        name, text = _lead(definition)
        if name is None:
            notes.append(f"channel {channel + 1} ({text}) is not one of the twelve leads; "
                         "left out")
            continue
        units = definition.get("ChannelSensitivityUnitsSequence")
        unit = str(units[0].get("CodeValue", "")) if units else ""
        millivolts = _MILLIVOLTS.get(unit.upper(), _MILLIVOLTS.get(unit))
        if "ChannelSensitivity" not in definition or millivolts is None:
            problems.append(f"lead {name}: no sensitivity in a voltage (units "
                            f"{unit or '(none)'})")
            continue
        leads.append(Lead(name, LEAD_BY_NAME[name],
                          (samples[:, channel] * millivolts).astype(np.float32)))
    if rate <= 0:
        problems.append("no sampling frequency")
    if not leads and not problems:
        problems.append("no ECG leads among its channels")
    return Waveform("DICOM", order_key, started_at, rate or None, tuple(leads),
                    problems=tuple(problems), notes=tuple(notes))


def _lead(definition: Any) -> tuple[str | None, str]:
    """The lead a channel records (None if none of the twelve), and its source's text."""
    sources = definition.get("ChannelSourceSequence")
    if not sources:
        return None, "no channel source"
    source = sources[0]
    code, meaning = str(source.get("CodeValue", "")), str(source.get("CodeMeaning", ""))
    if match := _CODE.match(code):
        number = int(match.group(1))
        number = number - 256 if number > 256 else number
        if number in _LEAD_NUMBERS:
            return _LEAD_NUMBERS[number], meaning
    words = meaning.replace("(Einthoven)", "").replace("Lead", "").strip().upper()
    return _BY_TEXT.get(words), meaning or code


def _sop_class(dataset: Any) -> str:
    uid = dataset.get("SOPClassUID")
    return f"a {uid.name}" if uid is not None else "the object"


def write_dicom_ecg(leads: list[tuple[str, np.ndarray]], rate_hz: float) -> bytes:
    """A 12-lead ECG Waveform Storage object of `leads` (name, mV): for tests and the demo.
    Samples are 16-bit at 1.25 uV per unit, as devices write them."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    sop_class = UID("1.2.840.10008.5.1.4.1.1.9.1.1")  # 12-lead ECG Waveform Storage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality = "ECG"
    number = {name: n for n, name in _LEAD_NUMBERS.items()}
    group = Dataset()
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = len(leads)
    group.NumberOfWaveformSamples = len(leads[0][1])
    group.SamplingFrequency = f"{rate_hz:g}"
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    channels = []
    for name, _ in leads:
        channel, source, units = Dataset(), Dataset(), Dataset()
        source.CodeValue, source.CodingSchemeDesignator = f"5.6.3-9-{number[name]}", "SCPECG"
        source.CodingSchemeVersion, source.CodeMeaning = "1.3", f"Lead {name}"
        units.CodeValue, units.CodingSchemeDesignator, units.CodeMeaning = "uV", "UCUM", "uV"
        channel.ChannelSourceSequence = [source]
        channel.ChannelSensitivity = "1.25"
        channel.ChannelSensitivityUnitsSequence = [units]
        channel.ChannelSensitivityCorrectionFactor = "1"
        channel.ChannelBaseline = "0"
        channel.WaveformBitsStored = 16
        channels.append(channel)
    group.ChannelDefinitionSequence = channels
    digits = np.stack([np.rint(samples * 1000.0 / 1.25) for _, samples in leads], axis=1)
    group.WaveformData = np.clip(digits, -32768, 32767).astype("<i2").tobytes()
    ds.WaveformSequence = [group]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
