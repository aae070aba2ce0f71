"""The synthetic patients as the HL7 v2 feed a hospital would send, mess included.

Per patient: an ADT^A04 registration per visit (PID, PV1), an ORU^R01 per visit with the
results taken there (LOINC-coded OBX), and ADT^A08 with DG1 when a diagnosis is coded.
Realistic mess, chosen per patient ("per lab") or per message:
- glucose in mg/dL or mmol/L, HbA1c in % (NGSP) or mmol/mol (IFCC), lipids in mg/dL or
  mmol/L;
- a result sent wrong and then corrected (OBX-11 "C", same order number);
- a result that could not be obtained (OBX-11 "X", no value).

`Coding` says how a site codes what it sends; `HOME_CODING` is the above. `EXTERNAL_CODING`
is a site unlike ours, as real feeds are: other LOINC codes for the same test (glucose
2339-0 and 41653-7, HbA1c 17856-6, 4549-2 and 59261-8, fasting glucose 76629-5), more
mmol/L and mmol/mol, BMI sent only as body weight (kg or lb) and height (cm or in),
diagnoses coded in SNOMED CT, in DG1 or as a problem list (PRB in PPR^PC1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

import numpy as np

from engines.training.cohort import DIAGNOSES, SyntheticPatient

LOINC = {"hba1c": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
         "fpg": ("1558-6", "Fasting glucose [Mass/volume] in Serum or Plasma"),
         "glucose": ("2345-7", "Glucose [Mass/volume] in Serum or Plasma"),
         "bmi": ("39156-5", "Body mass index (BMI) [Ratio]"),
         "sbp": ("8480-6", "Systolic blood pressure"),
         "dbp": ("8462-4", "Diastolic blood pressure"),
         "chol": ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma"),
         "hdl": ("2085-9", "HDL Cholesterol"),
         "ldl": ("13457-7", "LDL Cholesterol (calculated)"),
         "tg": ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma")}
# Other codes sites use for the same test (the mapping in app/clinic/features.py reads all).
ALT_LOINC = {"hba1c": [("17856-6", "Hemoglobin A1c/Hemoglobin.total in Blood by HPLC"),
                       ("4549-2", "Hemoglobin A1c/Hemoglobin.total in Blood by Electrophoresis")],
             "glucose": [("2339-0", "Glucose [Mass/volume] in Blood"),
                         ("41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer")],
             "fpg": [("76629-5", "Fasting glucose [Moles/volume] in Blood")]}
IFCC_LOINC = ("59261-8", "Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol")
WEIGHT = ("29463-7", "Body weight")
HEIGHT = ("8302-2", "Body height")
SNOMED = {"dx_htn": ("38341003", "Hypertensive disorder"),
          "dx_prediabetes": ("714628002", "Prediabetes"),
          "dx_gdm": ("11687002", "Gestational diabetes mellitus"),
          "dx_pcos": ("69878008", "Polycystic ovaries"),
          "dx_famhx": ("160303001", "Family history: Diabetes mellitus"),
          "dx_obesity": ("414916001", "Obesity"), "dx_smi": ("58214004", "Schizophrenia"),
          "dx_t2d": ("44054006", "Diabetes mellitus type 2")}


@dataclass(frozen=True, slots=True)
class Coding:
    """How a site codes its messages: each a per-patient ("per lab") probability."""

    ifcc: float = 0.3  # HbA1c in mmol/mol
    mmol_glucose: float = 0.3
    mmol_lipids: float = 0.3
    other_loinc: float = 0.0  # another LOINC code for the same test
    weight_height: float = 0.0  # no BMI: weight and height
    imperial: float = 0.0  # of those, in lb and in
    snomed: float = 0.0  # diagnoses in SNOMED CT, not ICD-10
    problem_list: float = 0.0  # diagnoses as PRB in PPR^PC1, not DG1 in ADT^A08


HOME_CODING = Coding()
EXTERNAL_CODING = Coding(ifcc=0.6, mmol_glucose=0.6, mmol_lipids=0.6, other_loinc=0.7,
                         weight_height=0.6, imperial=0.5, snomed=0.7, problem_list=0.5)

RACE = {"white": "2106-3^White^CDCREC", "south_asian": "2029-7^Asian Indian^CDCREC",
        "black": "2054-5^Black or African American^CDCREC",
        "east_asian": "2039-6^Japanese^CDCREC", "other": "2131-1^Other Race^CDCREC"}
DX_TEXT = {"dx_htn": "Essential hypertension", "dx_prediabetes": "Prediabetes",
           "dx_gdm": "Gestational diabetes mellitus", "dx_pcos": "Polycystic ovarian syndrome",
           "dx_famhx": "Family history of diabetes mellitus", "dx_obesity": "Obesity",
           "dx_smi": "Schizophrenia", "dx_t2d": "Type 2 diabetes mellitus"}
FAMILY = ("Alder", "Birch", "Cedar", "Dune", "Elm", "Fjord", "Glen", "Heath", "Isle", "Juniper",
          "Kestrel", "Loch", "Moor", "North", "Oak", "Pike", "Quarry", "Reed", "Shore", "Thorn")
GIVEN_F = ("Ada", "Bea", "Cora", "Dina", "Edda", "Fay", "Gwen", "Hana", "Iris", "Juno")
GIVEN_M = ("Abe", "Bram", "Cai", "Dov", "Eli", "Finn", "Gus", "Hal", "Ivo", "Jax")
AUTHORITY = "CLARION-SYN"


def mrn(patient: SyntheticPatient) -> str:
    return f"SYN{patient.pid:06d}"


def _ts(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M%S+0000")


def _units(name: str, value: float, style: dict[str, bool]) -> tuple[str, str]:
    """(value text, unit) in the patient's lab style."""
    if name == "hba1c" and style["ifcc"]:
        return f"{(value - 2.152) / 0.09148:.0f}", "mmol/mol"
    if name in ("fpg", "glucose") and style["mmol_glucose"]:
        return f"{value / 18.016:.1f}", "mmol/L"
    if name in ("chol", "hdl", "ldl") and style["mmol_lipids"]:
        return f"{value / 38.67:.2f}", "mmol/L"
    if name == "tg" and style["mmol_lipids"]:
        return f"{value / 88.57:.2f}", "mmol/L"
    unit = {"hba1c": "%", "bmi": "kg/m2", "sbp": "mm[Hg]", "dbp": "mm[Hg]"}.get(name, "mg/dL")
    return (f"{value:g}", unit)


def _height_cm(patient: SyntheticPatient) -> float:
    """A fixed adult height for the patient (cm), so weight = BMI x height²."""
    base = 163.0 if patient.sex == "F" else 177.0
    return base + 7.0 * float(np.random.default_rng(patient.pid + 77).normal())


def messages(patient: SyntheticPatient, seed: int = 0,
             coding: Coding = HOME_CODING) -> Iterator[bytes]:
    """The patient's feed, in time order, as HL7 v2.5.1 messages (CR separated)."""
    rng = np.random.default_rng(seed * 1_000_003 + patient.pid)
    style = {"ifcc": rng.random() < coding.ifcc, "mmol_glucose": rng.random() < coding.mmol_glucose,
             "mmol_lipids": rng.random() < coding.mmol_lipids}
    # Drawn from their own stream, so the home feed is what it always was.
    site = np.random.default_rng(seed * 1_000_003 + patient.pid + 0x51E)
    other_loinc = site.random() < coding.other_loinc
    weight_height = site.random() < coding.weight_height
    imperial = site.random() < coding.imperial
    snomed = site.random() < coding.snomed
    problem_list = site.random() < coding.problem_list
    height = _height_cm(patient)
    sent_height = False
    female = patient.sex == "F"
    given = (GIVEN_F if female else GIVEN_M)[patient.pid % 10]
    family = FAMILY[(patient.pid // 10) % len(FAMILY)]
    pid = (f"PID|1||{mrn(patient)}^^^{AUTHORITY}^MR||{family}^{given}||"
           f"{patient.birth_date:%Y%m%d}|{patient.sex}||{RACE[patient.ethnicity]}")
    counter = 0

    def msh(kind: str, when: datetime) -> str:
        nonlocal counter
        counter += 1
        return (f"MSH|^~\\&|SYNTH-EHR|CLARION-SYN|CLARION|WS|{_ts(when)}||{kind}|"
                f"SYN{patient.pid:06d}-{counter:04d}|P|2.5.1")

    for when, group in groupby(patient.events, key=lambda e: e.time):
        events = list(group)
        names = {e.name for e in events}
        visit_no = f"V{patient.pid:06d}-{counter:04d}"
        pv1 = f"PV1|1|O|CLINIC^1^1^CLARION-SYN||||D01^Doctor^Demo||||||||||||{visit_no}"
        if "visit" in names:
            yield "\r".join([msh("ADT^A04^ADT_A01", when), f"EVN|A04|{_ts(when)}", pid,
                             pv1 + "|" * 25 + _ts(when)]).encode() + b"\r"
        dxs = [e for e in events if e.name in DIAGNOSES]
        if dxs:
            coded = [(*SNOMED[e.name], "SCT") if snomed else
                     (DIAGNOSES[e.name], DX_TEXT[e.name], "I10") for e in dxs]
            if problem_list:
                segs = [msh("PPR^PC1^PPR_PC1", when), pid, pv1]
                segs += [f"PRB|AD|{_ts(when)}|{code}^{text}^{system}|P{patient.pid}-{i}"
                         f"|||{_ts(when)}|||||||||{_ts(when)}"
                         for i, (code, text, system) in enumerate(coded, 1)]
            else:
                segs = [msh("ADT^A08^ADT_A01", when), f"EVN|A08|{_ts(when)}", pid, pv1]
                segs += [f"DG1|{i}||{code}^{text}^{system}||{_ts(when)}|F"
                         for i, (code, text, system) in enumerate(coded, 1)]
            yield "\r".join(segs).encode() + b"\r"
        results = [e for e in events if e.name in LOINC and e.value is not None]
        if not results:
            continue
        order = f"ORD{patient.pid:06d}-{counter:04d}"
        wrong_first = rng.random() < 0.03
        obx: list[str] = []
        corrected: list[str] = []
        sent = []
        for e in results:
            if e.name == "bmi" and weight_height:  # weight, and height once in a while
                kg = float(e.value or 0) * (height / 100) ** 2
                sent.append((WEIGHT, f"{kg * 2.20462:.1f}" if imperial else f"{kg:.1f}",
                             "[lb_av]" if imperial else "kg", e))
                if not sent_height or site.random() < 0.2:
                    sent_height = True
                    sent.append((HEIGHT, f"{height / 2.54:.1f}" if imperial else f"{height:.0f}",
                                 "[in_i]" if imperial else "cm", e))
                continue
            value, unit = _units(e.name, float(e.value or 0), style)
            code_text = LOINC[e.name]
            if e.name == "hba1c" and unit == "mmol/mol" and other_loinc:
                code_text = IFCC_LOINC
            elif other_loinc and e.name in ALT_LOINC:
                options = ALT_LOINC[e.name]
                code_text = options[patient.pid % len(options)]
            if code_text[0] == "76629-5":  # a moles/volume code: sent in mmol/L
                value, unit = f"{float(e.value or 0) / 18.016:.1f}", "mmol/L"
            sent.append((code_text, value, unit, e))
        for i, ((code, text), value, unit, e) in enumerate(sent, 1):
            if rng.random() < 0.02:  # could not be obtained; re-measured below
                obx.append(f"OBX|{len(obx) + 1}|NM|{code}^{text}^LN||||||||X|||{_ts(when)}")
            line = f"OBX|{len(obx) + 1}|NM|{code}^{text}^LN||{value}|{unit}|||||{{status}}|||{_ts(when)}"
            if wrong_first and i == 1 and code not in (WEIGHT[0], HEIGHT[0]):
                wrong, _ = _units(e.name, float(e.value or 0) * 1.5, style)
                obx.append(line.replace(f"||{value}|", f"||{wrong}|").format(status="F"))
                corrected.append(line.replace(f"OBX|{len(obx)}|", "OBX|1|").format(status="C"))
            else:
                obx.append(line.format(status="F"))
        head = [pid, pv1, f"ORC|RE||{order}", f"OBR|1||{order}|24331-1^Panel^LN|||{_ts(when)}"]
        yield "\r".join([msh("ORU^R01^ORU_R01", when), *head, *obx]).encode() + b"\r"
        if corrected:
            yield "\r".join([msh("ORU^R01^ORU_R01", when), *head, *corrected]).encode() + b"\r"


def feed(patients: list[SyntheticPatient], seed: int = 0,
         coding: Coding = HOME_CODING) -> list[bytes]:
    """All patients' messages, interleaved in time order as a hospital would send them."""
    timed = []
    for patient in patients:
        for n, message in enumerate(messages(patient, seed, coding)):
            stamp = message.split(b"|", 7)[6]
            timed.append((stamp, patient.pid, n, message))
    timed.sort()
    return [m for *_, m in timed]
