"""ECG waveforms in HL7 v2: IHE PCD-01 sample arrays, aECG, DICOM, PDF; what cannot be read
is returned with the reason, never dropped. Synthetic signals, a real MIT-BIH record where
the archive is at hand, and the 12-lead ECG that pydicom ships as test data."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from integrations.hl7.aecg import write_aecg
from integrations.hl7.dicom_ecg import write_dicom_ecg
from integrations.hl7.parse import parse_message
from integrations.hl7.waveform import LEAD_BY_NAME as LEAD_CODES_BY_NAME
from integrations.hl7.waveform import LEAD_CODES, lead_of, oru_waveform


def sine_leads(seconds: float = 10.0, rate: float = 500.0,
               names: tuple[str, ...] = ("I", "II", "V1")) -> list[tuple[str, np.ndarray]]:
    t = np.arange(int(seconds * rate)) / rate
    return [(name, (0.4 + 0.3 * i) * np.sin(2 * np.pi * 1.2 * t + i)) for i, name in
            enumerate(names)]


def parse(text: str, trigger: str = "R01"):  # noqa: ANN201 - a ParsedMessage
    [parsed] = parse_message(text, "ORU", trigger)
    return parsed


def test_pcd01_round_trip_keeps_leads_rate_units_and_time() -> None:
    leads = sine_leads()
    parsed = parse(oru_waveform("M1", "C1", leads, 500, "20261203101500"))
    [waveform] = parsed.waveforms
    assert waveform.source == "PCD-01" and waveform.analysable, waveform.problems
    assert waveform.rate_hz == 500.0 and waveform.seconds == pytest.approx(10.0)
    assert [lead.name for lead in waveform.leads] == ["I", "II", "V1"]
    assert [lead.code for lead in waveform.leads] == ["131329", "131330", "131331"]
    for (_, expected), lead in zip(leads, waveform.leads, strict=True):
        assert np.max(np.abs(lead.samples - expected)) <= 0.0005 + 1e-6  # 1 uV steps
    assert waveform.started_at is not None and waveform.started_at.minute == 15
    assert waveform.order_key == "F:ECGC1"
    # The samples and their attributes are a recording, not results.
    assert parsed.observations == ()


def test_w01_is_read_too() -> None:
    text = oru_waveform("M1", "C2", sine_leads(), 500, "20261203101500", trigger="W01")
    assert parse(text, "W01").waveforms[0].analysable


def with_obx(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


def test_lead_code_wins_over_the_senders_text() -> None:
    text = with_obx(oru_waveform("M1", "C3", sine_leads(names=("II",)), 500, "20261203"),
                    "131330^MDC_ECG_LEAD_II^MDC", "131330^MDC_ECG_LEAD_V1^MDC")
    [waveform] = parse(text).waveforms
    assert waveform.leads[0].name == "II"
    assert any("disagrees" in note for note in waveform.notes)
    # A mnemonic alone (or the ELEC_POTL spelling) is looked up in the table.
    assert lead_of("", "MDC_ECG_ELEC_POTL_AVF") == ("aVF", "131392", "")
    assert lead_of("0", "MDC_ECG_LEAD_V6")[:2] == ("V6", "131336")
    assert set(LEAD_CODES.values()) == {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2",
                                        "V3", "V4", "V5", "V6"}


def test_attribute_found_by_mnemonic_whatever_its_code() -> None:
    """Public examples send `0^MDC_ATTR_SAMP_RATE`: the mnemonic and sub-ID decide."""
    text = with_obx(oru_waveform("M1", "C4", sine_leads(names=("II",)), 250, "20261203"),
                    "|^MDC_ATTR_SAMP_RATE^MDC|", "|0^MDC_ATTR_SAMP_RATE^MDC|")
    assert parse(text).waveforms[0].rate_hz == 250.0


def test_counts_with_a_resolution_are_scaled() -> None:
    text = oru_waveform("M1", "C5", sine_leads(names=("II",)), 500, "20261203")
    text = with_obx(text, "266414^MDC_DIM_MICRO_VOLT^MDC", "262656^MDC_DIM_DIMLESS^MDC")
    text = text.replace("MDC_DIM_PER_SEC^MDC|||||F", "MDC_DIM_PER_SEC^MDC|||||F\r"
                        "OBX|9|NM|^MDC_ATTR_NU_MSMT_RES^MDC|1.1.1.1.2|2.5|"
                        "266414^MDC_DIM_MICRO_VOLT^MDC|||||F", 1)
    [waveform] = parse(text).waveforms
    assert waveform.analysable, waveform.problems
    expected = sine_leads(names=("II",))[0][1]
    assert np.max(np.abs(waveform.leads[0].samples - expected * 2.5)) < 0.002


@pytest.mark.parametrize(("old", "new", "problem"), [
    ("\rOBX|2|NM|^MDC_ATTR_SAMP_RATE^MDC|1.1.1.1.1|500|264608^MDC_DIM_PER_SEC^MDC|||||F", "",
     "no MDC_ATTR_SAMP_RATE"),
    ("266414^MDC_DIM_MICRO_VOLT^MDC", "", "no units (OBX-6)"),
    ("266414^MDC_DIM_MICRO_VOLT^MDC", "262656^MDC_DIM_DIMLESS^MDC", "without a resolution"),
    ("|500|264608^MDC_DIM_PER_SEC", "|fast|264608^MDC_DIM_PER_SEC", "not a number"),
])
def test_unreadable_recordings_are_returned_with_the_reason(old: str, new: str,
                                                              problem: str) -> None:
    text = with_obx(oru_waveform("M1", "C6", sine_leads(names=("II",)), 500, "20261203"),
                    old, new)
    [waveform] = parse(text).waveforms
    assert not waveform.analysable
    assert any(problem in p for p in waveform.problems), waveform.problems


def ed_message(payload: bytes, subtype: str) -> str:
    data = base64.b64encode(payload).decode()
    return ("MSH|^~\\&|ECG|H|C|W|20261203||ORU^R01|E1|P|2.6\rPID|1||M9^^^HOSP^MR||Doe^J\r"
            "OBR|1|P1|F1|11524-6^EKG study^LN|||20261203090000\r"
            f"OBX|1|ED|11524-6^EKG study^LN||^application^{subtype}^Base64^{data}||||||F\r")


def test_aecg_document_is_decoded_to_the_same_leads() -> None:
    leads = sine_leads(names=("I", "II", "aVR", "V6"))
    [waveform] = parse(ed_message(write_aecg(leads, 500, "20261203090000"), "xml")).waveforms
    assert waveform.source == "aECG" and waveform.analysable, waveform.problems
    assert waveform.rate_hz == pytest.approx(500.0)
    assert [lead.name for lead in waveform.leads] == ["I", "II", "aVR", "V6"]
    assert np.max(np.abs(waveform.leads[1].samples - leads[1][1])) <= 0.0006


def test_a_device_written_dicom_ecg_is_decoded() -> None:
    """pydicom's test file waveform_ecg.dcm: 12-lead ECG Waveform Storage as a device wrote
    it, a 10 s rhythm group at 1,000 Hz and a derived median beat; the rhythm is read,
    each lead by its SCP-ECG code, in mV."""
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("waveform_ecg.dcm")
    assert path is not None, "pydicom's test files are part of its wheel"
    payload = Path(path).read_bytes()
    [waveform] = parse(ed_message(payload, "DICOM")).waveforms
    assert waveform.source == "DICOM" and waveform.analysable, waveform.problems
    assert waveform.rate_hz == 1000.0 and waveform.seconds == 10.0
    assert [lead.name for lead in waveform.leads] == [
        "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert waveform.leads[2].code == LEAD_CODES_BY_NAME["III"]
    microvolts = pydicom.dcmread(path).waveform_array(0)  # sensitivity applied: uV
    assert np.allclose(waveform.leads[7].samples, microvolts[:, 7] / 1000.0, atol=1e-6)
    assert not waveform.document  # decoded: stored as leads, not as a document


def test_a_dicom_ecg_round_trip_and_a_damaged_one_kept_with_the_reason() -> None:
    leads = sine_leads(names=("I", "II", "aVF", "V2"))
    [waveform] = parse(ed_message(write_dicom_ecg(leads, 500), "DICOM")).waveforms
    assert waveform.analysable and waveform.rate_hz == 500.0
    assert [lead.name for lead in waveform.leads] == ["I", "II", "aVF", "V2"]
    assert np.max(np.abs(waveform.leads[3].samples - leads[3][1])) <= 0.000625 + 1e-6
    damaged = write_dicom_ecg(leads, 500)[:3000]  # cut off inside the waveform data
    [kept] = parse(ed_message(damaged, "DICOM")).waveforms
    assert kept.source == "DICOM" and not kept.analysable and kept.document == damaged
    assert "cannot be analysed" in kept.problems[0], kept.problems


def test_pdf_is_kept_not_analysed_and_bad_xml_says_why() -> None:
    [pdf] = parse(ed_message(b"%PDF-1.4 a resting ECG report", "pdf")).waveforms
    assert pdf.source == "PDF" and pdf.document.startswith(b"%PDF") and not pdf.analysable
    [broken] = parse(ed_message(b"<AnnotatedECG><series>", "xml")).waveforms
    assert not broken.analysable and "not XML" in broken.problems[0]


def test_twelve_leads_ten_seconds_parse_quickly() -> None:
    """10 s x 12 leads x 500 Hz (~300 kB of text): the samples skip the general parser."""
    import time

    names = tuple(LEAD_CODES.values())
    text = oru_waveform("M1", "C7", sine_leads(10.0, 500.0, names), 500, "20261203")
    assert len(text) > 250_000
    started = time.perf_counter()
    [waveform] = parse(text).waveforms
    elapsed = time.perf_counter() - started
    assert len(waveform.leads) == 12 and waveform.analysable
    assert elapsed < 2.0, f"{elapsed:.2f} s"  # a sanity bound; bench/ecg.py times it


def test_mitdb_record_round_trip() -> None:
    from engines.training import ecg_data

    try:
        folder = ecg_data.database("mitdb")
    except ecg_data.EcgDataMissing as exc:
        pytest.skip(str(exc))
    record = ecg_data.read_record(folder, "100", "MLII")
    strip = record.signal[:int(30 * record.rate_hz)]
    [waveform] = parse(oru_waveform("M1", "C8", [("MLII", strip)], record.rate_hz,
                                    "20261203")).waveforms
    assert waveform.leads[0].name == "II" and waveform.rate_hz == 360.0
    assert np.max(np.abs(waveform.leads[0].samples - strip)) <= 0.0005 + 1e-6


def test_the_receipt_path_stays_pure_python() -> None:
    """The MLLP server, header checks and ACKs import no numpy (waveforms decode it lazily):
    a receiver that only acknowledges, and the MSI's test under wine, need none."""
    code = ("import sys, integrations.mllp, integrations.hl7.receipt, integrations.hl7.acks; "
            "print('numpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
