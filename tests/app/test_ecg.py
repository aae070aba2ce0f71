"""ECGs from the feed to the banner: stored compactly, quarantined when unreadable (and
still acknowledged), analysed with the shipped models, shown through the same policy and
adoption log. Real sockets, SQLite files and the real PostgreSQL server; MIT-BIH records
(Moody & Mark 2001; Goldberger et al. 2000, PhysioNet; ODC-By 1.0) where the archive is at
hand, simulated ECGs (neurokit2) otherwise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.clinic.alerts import Alert
from app.clinic.service import ClinicService
from app.config import Config
from app.ecg.analysis import EcgAnalyzer, load_analyzer
from app.ingest.processor import PatientChanged, Processor
from app.store.db import open_store
from app.store.models import AlertEvent, WaveformRecord
from app.store.waveforms import patient_waveforms
from integrations.hl7.waveform import oru_waveform
from integrations.mllp import MllpClient
from tests.app.helpers import ack_fields, hl7_message, running_service, store_raw, wait_processed


def simulated(seconds: float = 30.0, rate: int = 500, heart_rate: float = 70.0,
              seed: int = 1) -> np.ndarray:
    import neurokit2 as nk

    return np.asarray(nk.ecg_simulate(duration=seconds, sampling_rate=rate,
                                      heart_rate=heart_rate, random_state=seed))


def mitdb_strip(record: str, start_s: float, seconds: float = 30.0) -> tuple[np.ndarray, float]:
    from engines.training import ecg_data

    try:
        folder = ecg_data.database("mitdb")
    except ecg_data.EcgDataMissing as exc:
        pytest.skip(str(exc))
    lead = ecg_data.read_record(folder, record, "MLII")
    a = int(start_s * lead.rate_hz)
    return lead.signal[a:a + int(seconds * lead.rate_hz)], lead.rate_hz


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> EcgAnalyzer:
    found = load_analyzer(tmp_path_factory.mktemp("engines"))
    assert found is not None and found.rhythm is not None and found.beats is not None, \
        "the ECG models ship in engines/models/ecg_rhythm and ecg_beats"
    return found


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    engine = open_store(config.database_url)
    yield engine
    engine.dispose()


def test_a_recording_is_stored_compactly_and_read_back(engine: Engine) -> None:
    signal = simulated(10.0, 500)
    text = oru_waveform("ECG1", "W1", [("II", signal), ("V1", -signal)], 500, "20261203101500")
    store_raw(engine, text)
    assert Processor(engine).process_pending() == 1
    with Session(engine) as session:
        row = session.scalars(select(WaveformRecord)).one()
        assert row.status == "ok" and row.encoding == "int16-uV-zlib"
        assert len(row.data) < len(text) / 3  # int16 per sample, compressed
    with engine.connect() as conn:
        [stored] = patient_waveforms(conn, [row.patient_id])
    assert stored.rate_hz == 500.0 and [lead.name for lead in stored.leads] == ["II", "V1"]
    assert np.max(np.abs(stored.leads[0].samples - signal)) <= 0.0005 + 1e-6
    assert stored.lead(("II",)) is stored.leads[0]


def test_a_dicom_ecg_from_the_feed_is_stored_as_leads_and_analysed(
        engine: Engine, analyzer: EcgAnalyzer) -> None:
    """A resting 12-lead ECG as a DICOM object (pydicom's device-written test file) in an
    ED OBX: stored as leads, not as a document, and read by the models like any other."""
    import base64

    from pydicom.data import get_testdata_file

    payload = Path(get_testdata_file("waveform_ecg.dcm") or "").read_bytes()
    store_raw(engine, hl7_message(
        "MSH|^~\\&|ECG|H|C|W|20261203||ORU^R01|D1|P|2.6", "PID|1||M9^^^HOSP^MR||Doe^J",
        "OBR|1|P1|F1|11524-6^EKG study^LN|||20261203090000",
        f"OBX|1|ED|11524-6^EKG study^LN||^application^DICOM^Base64^"
        f"{base64.b64encode(payload).decode()}||||||F"))
    assert Processor(engine).process_pending() == 1
    with engine.connect() as conn:
        [stored] = patient_waveforms(conn, [1])
    assert stored.source == "DICOM" and stored.status == "ok", stored.problems
    assert len(stored.leads) == 12 and stored.rate_hz == 1000.0
    analysis = analyzer.analyse(stored)
    assert analysis.readable, analysis
    assert analysis.mean_hr is not None and 40 <= analysis.mean_hr <= 150


def test_a_recording_without_its_rate_is_quarantined_acked_and_kept(
        config: Config, caplog: pytest.LogCaptureFixture) -> None:
    text = oru_waveform("ECG2", "W2", [("II", simulated(10.0, 500))], 500, "20261203101500",
                        family="Quarantina", given="Testy")
    text = "\r".join(s for s in text.split("\r") if "MDC_ATTR_SAMP_RATE" not in s)
    with running_service(config) as (service, port), MllpClient("127.0.0.1", port) as client:
        ack = ack_fields(client.send(text.encode()))
        wait_processed(service.engine)
        with Session(service.engine) as session:
            row = session.scalars(select(WaveformRecord)).one()
    # PCD-01 asks for enhanced acknowledgement (MSH-15 AL): a commit accept, as for any
    # message stored durably.
    assert ack["MSA"][1] == "CA"
    assert row.status == "quarantined" and "MDC_ATTR_SAMP_RATE" in row.problems
    assert len(row.data) > 0  # the samples are kept for when the sender is fixed
    assert any("quarantined" in r.getMessage() for r in caplog.records)
    assert not any("Quarantina" in r.getMessage() for r in caplog.records)


def test_noise_is_reported_unreadable_not_guessed(analyzer: EcgAnalyzer) -> None:
    from app.clinic.ecg import ecg_scores
    from app.store.waveforms import StoredWaveform
    from integrations.hl7.waveform import Lead

    rng = np.random.default_rng(3)
    for samples in (rng.normal(0, 0.8, 15_000), np.zeros(15_000)):
        waveform = StoredWaveform(1, 1, "PCD-01", "ok", None, 500.0, 30.0, (),
                                  (Lead("II", "131330", samples.astype(np.float32)),))
        analysis = analyzer.analyse(waveform)
        assert not analysis.readable, analysis
        for _model, score in ecg_scores(analyzer.models, analysis):
            assert score.risk is None and score.tier == "not-applicable"
            assert "unreadable" in score.out_of_scope


def _analyse(analyzer: EcgAnalyzer, samples: np.ndarray, rate: float):  # noqa: ANN202
    from app.store.waveforms import StoredWaveform
    from integrations.hl7.waveform import Lead

    return analyzer.analyse(StoredWaveform(
        1, 1, "PCD-01", "ok", None, rate, len(samples) / rate, (),
        (Lead("II", "131330", samples.astype(np.float32)),)))


def test_af_and_sinus_rhythm_on_mitdb(analyzer: EcgAnalyzer) -> None:
    """Record 201 is in AF from 00:00 to 01:51 (reference annotations); record 100 is in
    sinus rhythm throughout. Neither the training nor the selection of the rhythm model saw
    MIT-BIH."""
    af = _analyse(analyzer, *mitdb_strip("201", 5.0))
    sinus = _analyse(analyzer, *mitdb_strip("100", 60.0))
    assert af.readable and sinus.readable
    assert af.af_probability is not None and af.af_probability > 0.5, af.rhythm_probs
    assert af.rhythm_seconds["A"] >= 20 and af.irregular
    assert sinus.af_probability is not None and sinus.af_probability < 0.2, sinus.rhythm_probs
    assert 60 <= (sinus.mean_hr or 0) <= 90
    assert af.strip is not None and len(af.strip.peaks) >= 5


def test_ventricular_bigeminy_counts_as_pvcs(analyzer: EcgAnalyzer) -> None:
    """Record 119 (DS1, a training record) has long runs of ventricular bigeminy; record 233
    (DS2, never trained on) has frequent multiform PVCs."""
    for record, start in (("119", 300.0), ("233", 60.0)):
        analysis = _analyse(analyzer, *mitdb_strip(record, start, 60.0))
        assert analysis.readable
        assert analysis.burden("V") > 0.10, (record, analysis.beat_counts)


def test_premature_atrial_beats_are_counted_by_their_timing(analyzer: EcgAnalyzer) -> None:
    """Record 232 (DS2, never trained on): sinus pauses of about 1.8 s and, between them,
    runs of premature atrial beats at about 0.72 s, three in four of its beats (reference
    annotations). The rhythm model calls it AF, yet its intervals are regular, so the
    early beats are counted S. In record 201's AF (00:00-01:51) no beat is S."""
    assert analyzer.beats is not None and analyzer.beats.card.raw["supraventricular"]
    runs = _analyse(analyzer, *mitdb_strip("232", 900.0, 60.0))
    assert runs.readable
    assert runs.burden("S") > 0.6 and runs.burden("V") < 0.05, runs.beat_counts
    af = _analyse(analyzer, *mitdb_strip("201", 5.0, 60.0))
    assert af.rhythm_seconds["A"] >= 40
    assert af.burden("S") < 0.05, af.beat_counts


def _send_and_follow(clinic, engine: Engine, *texts: str) -> list[PatientChanged]:  # noqa: ANN001
    store_raw(engine, *texts)
    seen: list[PatientChanged] = []
    Processor(engine, on_change=seen.append).process_pending()
    for change in seen:
        clinic.on_patient_changed(change)
    return seen


def _er_clinic(config: Config, engine: Engine, analyzer: EcgAnalyzer
               ) -> tuple[ClinicService, list[Alert]]:
    """An ER workstation's clinic with the ECG models (the risk model on its reference
    engine), and the banners it shows."""
    from engines.card import load_card
    from engines.onnxruntime import OnnxRuntimeEngine
    from engines.select import Candidate, Selection

    config.workstation.locations = ["ER"]
    card = load_card("t2d")
    reference = OnnxRuntimeEngine(card)
    reference.load()
    clinic = ClinicService(config, engine, card,
                           Selection(reference, [Candidate(reference.name, True, "test")]),
                           ecg=analyzer)
    shown: list[Alert] = []
    clinic.on_alert.append(shown.append)
    return clinic, shown


def test_an_af_strip_for_an_open_patient_raises_its_own_banner(
        config: Config, engine: Engine, analyzer: EcgAnalyzer) -> None:
    from app.store.models import utcnow

    af_strip, rate = mitdb_strip("201", 5.0)
    clinic, shown = _er_clinic(config, engine, analyzer)
    adt = hl7_message("MSH|^~\\&|ADT|H|C|W|20261203||ADT^A04|E1|P|2.5",
                      "PID|1||ECGAF^^^HOSP^MR||Doe^Jane||19500101|F", "PV1|1|E|ER^1^1")
    other = hl7_message("MSH|^~\\&|ADT|H|C|W|20261203||ADT^A04|E2|P|2.5",
                        "PID|1||ECGOTHER^^^HOSP^MR||Roe^Rick||19600101|M", "PV1|1|E|WARD^1")
    _send_and_follow(clinic, engine, adt, other)
    assert [p.name for p in clinic.open_patients] == ["DOE, Jane"]
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    _send_and_follow(clinic, engine,
                     oru_waveform("ECGAF", "E3", [("MLII", af_strip)], rate, now),
                     oru_waveform("ECGOTHER", "E4", [("MLII", af_strip)], rate, now))
    ecg_alerts = [a for a in shown if a.model.startswith("ecg_rhythm")]
    assert len(ecg_alerts) == 1, [a.headline for a in shown]  # the open patient only
    alert = ecg_alerts[0]
    assert alert.patient_name == "DOE, Jane" and alert.tier in ("high", "elevated")
    assert alert.headline.startswith("Possible atrial fibrillation (AF in ")
    assert [r.key for r in alert.recommendations][0] == "ecg12"
    assert "ACC/AHA/ACCP/HRS" in alert.recommendations[0].source
    assert alert.score.strip is not None and alert.score.at is not None
    assert {"features", "inference", "policy"} <= set(alert.latency_ms)
    # The same strip again is the same finding: the policy suppresses it, and logs why.
    clinic.on_patient_changed(_send_and_follow(
        clinic, engine, oru_waveform("ECGAF", "E5", [("MLII", af_strip)], rate, now))[0])
    assert len([a for a in shown if a.model.startswith("ecg_rhythm")]) == 1
    clinic.log.flush()
    with Session(engine) as session:
        events = session.scalars(select(AlertEvent).where(
            AlertEvent.model.like("ecg_rhythm%"))).all()
    kinds = [e.event for e in events]
    assert "generated" in kinds and "suppressed" in kinds
    assert any("recently-shown" in (e.reason or "") for e in events)
    # The patient view reads the latest recording's scores, with the strip.
    summary = clinic.summary(alert.patient_id, utcnow())
    labels = [s.label for s in summary.scores]
    assert labels[0] == "t2d_12m" and {"ecg_rhythm", "ecg_beats"} <= set(labels)
    clinic.close()


def test_frequent_pvcs_raise_a_banner_and_sinus_rhythm_none(
        config: Config, engine: Engine, analyzer: EcgAnalyzer) -> None:
    """Record 100 (DS2) is sinus rhythm; record 233 (DS2) has frequent multiform PVCs.
    Neither was trained on. The beat model's tier reads the V share only."""
    clinic, shown = _er_clinic(config, engine, analyzer)
    _send_and_follow(clinic, engine, hl7_message(
        "MSH|^~\\&|ADT|H|C|W|20261203||ADT^A04|P1|P|2.5",
        "PID|1||ECGPVC^^^HOSP^MR||Poe^Vic||19500101|M", "PV1|1|E|ER^1^1"))
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    sinus, rate = mitdb_strip("100", 60.0, 60.0)
    _send_and_follow(clinic, engine, oru_waveform("ECGPVC", "P2", [("MLII", sinus)], rate, now))
    assert not [a for a in shown if a.model.startswith("ecg_beats")], \
        [a.headline for a in shown]
    pvcs, rate = mitdb_strip("233", 60.0, 60.0)
    _send_and_follow(clinic, engine, oru_waveform("ECGPVC", "P3", [("MLII", pvcs)], rate, now))
    [alert] = [a for a in shown if a.model.startswith("ecg_beats")]
    assert alert.headline.startswith("Frequent PVCs"), alert.headline
    assert alert.score.risk is not None and alert.score.risk >= 0.10
    assert [r.key for r in alert.recommendations] == ["holter", "echo"]
    assert "AHA/ACC/HRS" in alert.recommendations[0].source
    assert alert.score.strip is not None and "V" in alert.score.strip.classes
    clinic.close()


def test_score_json_lists_each_recording(config: Config, engine: Engine, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    strip, rate = mitdb_strip("201", 5.0)
    store_raw(engine, oru_waveform("ECGJSON", "J1", [("MLII", strip)], rate, "20261203101500"))
    Processor(engine).process_pending()
    assert main(["score", "--db", config.database_url, "--mrn", "ECGJSON", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    by_label = {s["label"]: s for s in row["scores"]}
    rhythm, beats = by_label["ecg_rhythm"], by_label["ecg_beats"]
    assert rhythm["risk"] == pytest.approx(rhythm["classes"]["A"], abs=1e-4)
    assert set(rhythm["classes"]) == {"N", "A", "O", "~"}
    assert rhythm["at"].startswith("2026-12-03T10:15:00")
    assert sum(beats["classes"].values()) > 20 and 0.0 <= beats["risk"] <= 1.0
