"""Synthetic longitudinal patients for the type 2 diabetes (T2D) risk model.

Every patient here is invented. The generator is a small simulation whose structure and
effect sizes follow published risk factors, so that a model trained on it has to learn
the relationships clinicians know — not so that its numbers describe any real population.

Generating process (t in years, index date = the patient's "now", t = 0):

1. Demographics. Age at index ~ U(25, 80); sex F/M 1:1; ethnicity in the QDiabetes-2018
   groups, here collapsed to White 70 %, South Asian 10 %, Black African/Caribbean 8 %,
   East Asian 6 %, Other 6 %. Observed history length ~ U(0.5, 10) years (capped by
   age - 18).
2. Risk factors (prevalences from the ADA risk test and QDiabetes-2018 variable list):
   family history of diabetes (Z83.3) 25 %; gestational diabetes history (O24.4) in
   women 6 % (x2 in South Asian/East Asian women); PCOS (E28.2) in women 7 %; severe
   mental illness 3 %; statin use and corticosteroid use (not in the feed; they only
   move the hazard, as in QDiabetes).
3. Trajectories, linear in time with noise:
   BMI(t) = BMI0 + d_bmi * t,  BMI0 ~ 27 * LogNormal(0, 0.17),  d_bmi ~ N(0.12, 0.25)/yr
   SBP(t) = 112 + 0.55 (age(t) - 40) + 0.9 (BMI(t) - 25) + u_sbp,  u_sbp ~ N(0, 12)
   DBP = 0.55 SBP + N(8, 6);  total cholesterol ~ N(195, 35) + 1.2 (BMI - 25);
   HDL = 58 - 0.9 (BMI - 25) - 5 [male] + N(0, 9);  LDL = TC - HDL - TG/5;
   TG = 110 * exp(0.025 (BMI - 25) + N(0, 0.35)).
   Glycaemia follows a latent HbA1c (%), from the UKPDS/Whitehall II observation that
   HbA1c rises slowly for years and then faster before diagnosis:
   A(t) = 5.15 + 0.010 (age(t) - 40) + 0.035 (BMI(t) - 25) + eth_A + 0.12 [famhx]
          + 0.18 [GDM] + u_A + s (t - t0)_+ ,   u_A ~ N(0, 0.22)
   with s = 0.05 * exp(0.9 * lp) %/yr, lp the log-hazard of step 4, and fasting glucose
   FPG(t) = 95 + 21 (A(t) - 5.4) + N(0, 6) mg/dL (the ADAG/A1c-derived relationship).
   Measured values add analytic noise (HbA1c sd 0.1 %, FPG sd 4 mg/dL, BMI sd 0.4).
4. A clinical-onset hazard on top of the glycaemic threshold, from QDiabetes-2018 hazard
   ratios (Hippisley-Cox & Coupland, BMJ 2017;359:j5019) and the ADA risk test:
   lp = 0.045 (age - 50) [capped at 70] + 0.08 (BMI - 27) + eth (South Asian 0.9, Black
   0.5, East Asian 0.4, Other 0.2) + 0.5 [famhx] + 0.4 [hypertension] + 1.2 [GDM]
   + 0.6 [PCOS] + 0.3 [statin] + 0.3 [steroid] + 0.35 [SMI] + 0.15 [male]
   + 1.1 (A - 5.6)_+ + 0.03 (FPG - 100)_+
   hazard(t) = 0.004 * exp(lp) per year. The hazard ratios are rounded versions of the
   published ones (e.g. GDM RR ~7 per Bellamy et al., Lancet 2009 → exp(1.2) x the
   glycaemic pathway).
5. Onset = the first of (latent A(t) >= 6.5 %, latent FPG >= 126 mg/dL, hazard event).
   The label is onset in (0, 1] year after the index visit — the ADA definitions
   (E11, HbA1c >= 6.5 %, fasting glucose >= 126 mg/dL). Onset before index makes the
   patient prevalent: 80 % of them carry E11 in their record (diagnosed, outside the
   model's intended use), 20 % do not (undiagnosed; a result in the diabetic range may
   be on record).
6. Observation process: visits as a Poisson process, rate 1.5/yr + 0.04 per year of age
   over 40 + 1.0 for hypertension; at a visit BMI (70 %), blood pressure (80 %), HbA1c
   (15 %, 45 % with risk factors), FPG (10 %), random glucose (12 %), lipids (20 %).
   Hypertension (I10) is coded once SBP > 140 at two visits; prediabetes (R73.03) is coded
   with probability 0.6 after an HbA1c of 5.7-6.4 %.

Step 6 is how a site observes its patients, and it differs between sites: `Observation`
holds its rates and probabilities. `HOME` is the setting above; `varied(rng)` draws a site
from wide ranges around it (training sees many sites); `EXTERNAL` is a site training never
sees — half the visits, bursty (visits cluster in episodes of illness), blood pressure and
lipids often missing, glucose more often than HbA1c, ages 18-95 and histories up to 15
years — the shifted test set of `clarion model report`.

`generate(n, seed)` is deterministic for a given (n, seed, observation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np

ETHNICITIES = ("white", "south_asian", "black", "east_asian", "other")
_ETH_P = (0.70, 0.10, 0.08, 0.06, 0.06)
_ETH_HAZARD = {"white": 0.0, "south_asian": 0.9, "black": 0.5, "east_asian": 0.4, "other": 0.2}
_ETH_A1C = {"white": 0.0, "south_asian": 0.15, "black": 0.2, "east_asian": 0.08, "other": 0.05}
YEAR = 365.25

# Canonical event names (the model vocabulary) and their canonical units.
NUMERIC_UNITS = {"hba1c": "%", "fpg": "mg/dL", "glucose": "mg/dL", "bmi": "kg/m2",
                 "sbp": "mm[Hg]", "dbp": "mm[Hg]", "chol": "mg/dL", "hdl": "mg/dL",
                 "ldl": "mg/dL", "tg": "mg/dL"}
DIAGNOSES = {"dx_htn": "I10", "dx_prediabetes": "R73.03", "dx_gdm": "O24.4",
             "dx_pcos": "E28.2", "dx_famhx": "Z83.3", "dx_obesity": "E66.9",
             "dx_smi": "F20.9", "dx_t2d": "E11.9"}


@dataclass(frozen=True, slots=True)
class Observation:
    """How a site observes its patients: the generating process's step 6 (and the ages it
    sees). Probabilities are per visit."""

    name: str = "home"
    ages: tuple[float, float] = (25.0, 80.0)
    history_years: tuple[float, float] = (0.5, 10.0)
    visit_rate: float = 1.5  # per year, plus the terms below
    visit_rate_per_age: float = 0.04  # per year of age over 40
    visit_rate_htn: float = 1.0
    episodes: float = 0.0  # share of visits that bring 1-3 follow-ups within weeks
    bmi: float = 0.7
    bp: float = 0.8
    hba1c: tuple[float, float] = (0.15, 0.45)  # without / with risk factors
    fpg: float = 0.10
    glucose: float = 0.12
    lipids: float = 0.20
    famhx_coded: float = 0.7
    prediabetes_coded: float = 0.6
    obesity_coded: float = 0.3


HOME = Observation()
EXTERNAL = Observation(
    name="external", ages=(18.0, 95.0), history_years=(0.2, 15.0), visit_rate=0.7,
    visit_rate_per_age=0.02, visit_rate_htn=0.5, episodes=0.35, bmi=0.45, bp=0.5,
    hba1c=(0.08, 0.30), fpg=0.18, glucose=0.30, lipids=0.08, famhx_coded=0.35,
    prediabetes_coded=0.3, obesity_coded=0.15)


def varied(rng: np.random.Generator) -> Observation:
    """A site drawn around HOME: rates halved to doubled, each test's probability scaled
    by 0.5-1.5 (capped), some burstiness. Training draws one per patient."""
    scale = lambda: float(rng.uniform(0.5, 1.5))  # noqa: E731 - one draw per field
    return replace(
        HOME, name="varied", visit_rate=HOME.visit_rate * float(rng.uniform(0.5, 2.0)),
        episodes=float(rng.uniform(0.0, 0.3)), bmi=min(0.95, HOME.bmi * scale()),
        bp=min(0.95, HOME.bp * scale()),
        hba1c=(min(0.9, HOME.hba1c[0] * scale()), min(0.95, HOME.hba1c[1] * scale())),
        fpg=HOME.fpg * scale(), glucose=HOME.glucose * scale(), lipids=HOME.lipids * scale(),
        famhx_coded=min(0.95, HOME.famhx_coded * scale()),
        prediabetes_coded=min(0.95, HOME.prediabetes_coded * scale()),
        obesity_coded=min(0.95, HOME.obesity_coded * scale()))


@dataclass(frozen=True, slots=True)
class Event:
    """One dated fact in canonical form: a numeric result, a diagnosis or a visit."""

    name: str  # vocabulary name: "hba1c", "dx_htn", "visit" ...
    time: datetime
    value: float | None = None


@dataclass(slots=True)
class SyntheticPatient:
    """One invented patient: demographics, history up to the index date, and the label."""

    pid: int
    sex: str  # "F" / "M"
    ethnicity: str
    birth_date: datetime
    index_date: datetime
    events: list[Event] = field(default_factory=list)
    label: int = 0  # T2D onset within 12 months after the index date
    prevalent: bool = False  # onset before the index date
    diagnosed: bool = False  # prevalent and E11 on record

    @property
    def age(self) -> float:
        return (self.index_date - self.birth_date).days / YEAR


def _lp(age: float, bmi: float, eth: str, famhx: bool, htn: bool, gdm: bool, pcos: bool,
        statin: bool, steroid: bool, smi: bool, male: bool, a1c: float, fpg: float) -> float:
    return (0.045 * (min(age, 70.0) - 50) + 0.08 * (bmi - 27) + _ETH_HAZARD[eth]
            + 0.5 * famhx + 0.4 * htn + 1.2 * gdm + 0.6 * pcos + 0.3 * statin + 0.3 * steroid
            + 0.35 * smi + 0.15 * male + 1.1 * max(a1c - 5.6, 0.0) + 0.03 * max(fpg - 100, 0.0))


def _patient(pid: int, rng: np.random.Generator, index_date: datetime,
             site: Observation = HOME) -> SyntheticPatient:
    sex = "F" if rng.random() < 0.5 else "M"
    male = sex == "M"
    eth = str(rng.choice(ETHNICITIES, p=_ETH_P))
    age = float(rng.uniform(*site.ages))
    birth = index_date - timedelta(days=age * YEAR)
    history = float(min(rng.uniform(*site.history_years), max(age - 18, 0.2)))
    famhx = rng.random() < 0.25
    gdm = (not male) and rng.random() < (0.12 if eth in ("south_asian", "east_asian") else 0.06)
    pcos = (not male) and rng.random() < 0.07
    smi = rng.random() < 0.03
    statin = rng.random() < 0.10 + 0.004 * max(age - 40, 0)
    steroid = rng.random() < 0.04
    bmi0 = 27 * math.exp(rng.normal(0, 0.17))
    d_bmi = rng.normal(0.12, 0.25)
    u_sbp, u_a = rng.normal(0, 12), rng.normal(0, 0.22)
    tc0, hdl_u, tg_u = rng.normal(195, 35), rng.normal(0, 9), rng.normal(0, 0.35)
    t_start = -history  # years relative to index

    def bmi(t: float) -> float:
        return bmi0 + d_bmi * (t - t_start)

    def sbp(t: float) -> float:
        return 112 + 0.55 * (age + t - 40) + 0.9 * (bmi(t) - 25) + u_sbp

    base_lp = _lp(age, bmi(0), eth, famhx, sbp(0) > 140, gdm, pcos, statin, steroid, smi, male,
                  5.6, 100)
    slope = 0.05 * math.exp(0.9 * base_lp)
    t_rise = t_start + rng.uniform(0, history)  # when the faster rise starts

    def a1c(t: float) -> float:
        return (5.15 + 0.010 * (age + t - 40) + 0.035 * (bmi(t) - 25) + _ETH_A1C[eth]
                + 0.12 * famhx + 0.18 * gdm + u_a + slope * max(t - t_rise, 0.0))

    fpg_u = rng.normal(0, 6)

    def fpg(t: float) -> float:
        return 95 + 21 * (a1c(t) - 5.4) + fpg_u

    # Onset: first threshold crossing or hazard event, on a monthly grid from the start.
    onset: float | None = None
    for t in np.arange(t_start, 1.0 + 1e-9, 1 / 12):
        t = float(t)
        if a1c(t) >= 6.5 or fpg(t) >= 126:
            onset = t
            break
        lp = _lp(age + t, bmi(t), eth, famhx, sbp(t) > 140, gdm, pcos, statin, steroid, smi,
                 male, a1c(t), fpg(t))
        if rng.random() < 1 - math.exp(-0.004 * math.exp(lp) / 12):
            onset = t
            break
    patient = SyntheticPatient(pid, sex, eth, birth, index_date)
    patient.prevalent = onset is not None and onset <= 0
    patient.label = int(onset is not None and 0 < onset <= 1.0)
    patient.diagnosed = patient.prevalent and rng.random() < 0.8

    def at(t: float) -> datetime:
        return index_date + timedelta(days=t * YEAR)

    events = patient.events
    # Long-standing diagnoses recorded early in the history.
    for flag, name in ((famhx and rng.random() < site.famhx_coded, "dx_famhx"), (gdm, "dx_gdm"),
                       (pcos, "dx_pcos"), (smi, "dx_smi")):
        if flag:
            events.append(Event(name, at(t_start + rng.uniform(0, min(history, 1.0)))))
    rate = (site.visit_rate + site.visit_rate_per_age * max(age - 40, 0)
            + (site.visit_rate_htn if sbp(0) > 140 else 0.0))
    risky = famhx or gdm or pcos or bmi(0) >= 30 or eth != "white"
    t, high_bp_visits, coded = t_start, 0, set()
    visits = [t_start]
    while True:
        t += rng.exponential(1 / rate)
        if t >= 0:
            break
        visits.append(t)
        if site.episodes and rng.random() < site.episodes:  # an illness: follow-ups
            for _ in range(int(rng.integers(1, 4))):
                t += float(rng.uniform(0.02, 0.12))
                if t < 0:
                    visits.append(t)
    visits.append(0.0)  # the index visit itself
    for t in visits:
        when = at(t)
        events.append(Event("visit", when))
        if rng.random() < site.bmi:
            events.append(Event("bmi", when, round(bmi(t) + rng.normal(0, 0.4), 1)))
        if rng.random() < site.bp:
            s = sbp(t) + rng.normal(0, 7)
            events.append(Event("sbp", when, round(s)))
            events.append(Event("dbp", when, round(0.55 * s + rng.normal(8, 6))))
            high_bp_visits += s > 140
            if high_bp_visits >= 2 and "dx_htn" not in coded:
                coded.add("dx_htn")
                events.append(Event("dx_htn", when))
        if rng.random() < site.hba1c[1 if risky else 0]:
            value = round(a1c(t) + rng.normal(0, 0.1), 1)
            events.append(Event("hba1c", when, value))
            if (5.7 <= value < 6.5 and "dx_prediabetes" not in coded
                    and rng.random() < site.prediabetes_coded):
                coded.add("dx_prediabetes")
                events.append(Event("dx_prediabetes", when))
        if rng.random() < site.fpg:
            events.append(Event("fpg", when, round(fpg(t) + rng.normal(0, 4))))
        if rng.random() < site.glucose:
            events.append(Event("glucose", when, round(fpg(t) + 25 + rng.normal(0, 18))))
        if rng.random() < site.lipids:
            tg = 110 * math.exp(0.025 * (bmi(t) - 25) + tg_u)
            tc = tc0 + 1.2 * (bmi(t) - 25)
            hdl = 58 - 0.9 * (bmi(t) - 25) - 5 * male + hdl_u
            events += [Event("chol", when, round(tc)), Event("hdl", when, round(hdl)),
                       Event("tg", when, round(tg)), Event("ldl", when, round(tc - hdl - tg / 5))]
        if bmi(t) >= 30 and "dx_obesity" not in coded and rng.random() < site.obesity_coded:
            coded.add("dx_obesity")
            events.append(Event("dx_obesity", when))
    if patient.diagnosed and onset is not None:
        events.append(Event("dx_t2d", at(max(onset, t_start))))
    events.sort(key=lambda e: e.time)
    return patient


def generate(n: int, seed: int = 2026,
             index_date: datetime = datetime(2026, 6, 1, 9, 0, tzinfo=UTC),
             observation: Observation | Callable[[np.random.Generator], Observation] = HOME,
             ) -> list[SyntheticPatient]:
    """`n` synthetic patients, reproducible for a given seed. `observation` is a site, or a
    function drawing one per patient (`varied`) from the patient's own generator."""
    root = np.random.default_rng(seed)
    seeds = root.integers(0, 2**63 - 1, size=n)
    out = []
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(int(s))
        site = observation if isinstance(observation, Observation) else observation(
            np.random.default_rng(int(s) ^ 0x5EED))  # its own stream: HOME's draws unchanged
        out.append(_patient(i, rng, index_date, site))
    return out
