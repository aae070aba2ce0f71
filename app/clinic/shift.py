"""The T2D model on feeds unlike ours: synthetic sites sent through the whole HL7 chain.

A site is how it observes its patients (`engines.training.cohort.Observation`: visit rates,
which tests, ages) and how it codes what it sends (`engines.training.feed.Coding`: LOINC
variants, units, weight and height instead of BMI, SNOMED CT, problem lists). Its patients'
messages go through receipt and the durable inbox into a throwaway SQLite store, are
processed as in production, and each patient's model input is read back by the
`FeatureCache` the app scores with — so the mapping is tested as much as the model. The
model (ONNX Runtime FP32) and both baselines are scored on those inputs.

`clarion model shift` runs it for the training site (held-out patients) and for the
external one, prints the table, and with `--write-card` stores it in the model card, where
`clarion model report` shows it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.clinic.features import FeatureCache
from app.ingest.inbox import DurableInbox
from app.ingest.processor import Processor
from app.store.db import make_engine, migrate
from app.store.patients import find_by_identifier
from engines.card import ModelCard
from engines.inputs import ModelInput, collate
from engines.onnxruntime import OnnxRuntimeEngine
from engines.training.baselines import LogisticBaseline, ada_points, latest_value_features
from engines.training.cohort import EXTERNAL, SyntheticPatient, generate, varied
from engines.training.feed import AUTHORITY, EXTERNAL_CODING, HOME_CODING, Coding, feed, mrn
from engines.training.metrics import evaluate
from integrations.hl7.receipt import assess


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    observation: Any  # an Observation, or `varied` (a site drawn per patient)
    coding: Coding
    words: str


TRAINING_SITE = Site("in-distribution", varied, HOME_CODING,
                     "the training generator (sites drawn around the home setting), "
                     "held-out patients")
EXTERNAL_SITE = Site("shifted", EXTERNAL, EXTERNAL_CODING,
                     "an external site training never saw: half the visits, bursty; "
                     "BP, lipids and HbA1c often missing; ages 18-95; other LOINC codes, "
                     "mmol units, weight/height instead of BMI, SNOMED CT in DG1 and PRB")


def through_hl7(card: ModelCard, patients: list[SyntheticPatient], coding: Coding,
                folder: Path, seed: int = 0) -> list[ModelInput]:
    """Each patient's model input as the app reads it after their feed went through
    receipt, the inbox, the processor and the store."""
    engine = make_engine(f"sqlite:///{folder / 'shift.db'}")
    migrate(engine)
    inbox = DurableInbox(engine)
    inbox.start()
    try:
        futures = [inbox.submit(raw, "shift-check", assess(raw))
                   for raw in feed(patients, seed, coding)]
        for future in futures:
            future.result(120)
    finally:
        inbox.stop()
    processor = Processor(engine)
    while processor.process_pending(5000):
        pass
    cache = FeatureCache(engine)
    out = []
    with Session(engine) as session:
        for patient in patients:
            found = find_by_identifier(session, mrn(patient), AUTHORITY)
            if len(found) != 1:
                raise RuntimeError(f"patient {mrn(patient)} was not stored once ({len(found)})")
            out.append(cache.get(found[0].id).inputs(card, patient.index_date))
    engine.dispose()
    return out


def evaluate_site(card: ModelCard, site: Site, patients: int, seed: int) -> dict[str, Any]:
    """Model and baselines on one site's eligible patients, through the HL7 chain."""
    started = time.perf_counter()
    cohort = [p for p in generate(patients, seed, observation=site.observation)
              if not p.prevalent]
    with tempfile.TemporaryDirectory(prefix="clarion-shift-") as folder:
        inputs = through_hl7(card, cohort, site.coding, Path(folder), seed)
    labels = np.array([p.label for p in cohort], dtype=np.int64)
    model = OnnxRuntimeEngine(card)
    risks = {"model": np.concatenate([model.infer(collate(card, inputs[i:i + 256]))
                                      for i in range(0, len(inputs), 256)])}
    lr = LogisticBaseline.from_json(card.raw["baselines"]["logistic_latest"])
    risks["logistic_latest"] = lr.predict(latest_value_features(card, inputs))
    risks["ada_points"] = np.array([ada_points(card, i) for i in inputs], dtype=float)
    metrics = evaluate(risks, labels, cohort)
    return {"site": site.name, "description": site.words, "seed": seed,
            "patients": len(cohort), "positive": int(labels.sum()),
            "seconds": round(time.perf_counter() - started, 1),
            "metrics": {k: {m: v[m] for m in ("auroc", "auprc", "ece") if m in v}
                        for k, v in metrics.items()}}


def shift_check(card: ModelCard, patients: int = 4000, seed: int | None = None
                ) -> dict[str, Any]:
    """Both sites with fresh patients (a seed training never used)."""
    seed = seed if seed is not None else int(card.raw["training"]["seed"]) + 202
    sites = [evaluate_site(card, site, patients, seed + n)
             for n, site in enumerate((TRAINING_SITE, EXTERNAL_SITE))]
    inside, shifted = (s["metrics"]["model"]["auroc"] for s in sites)
    beats = all(s["metrics"]["model"][m] > s["metrics"][b][m] for s in sites
                for b in ("logistic_latest", "ada_points") for m in ("auroc", "auprc"))
    return {"sites": sites, "auroc_gap": round(inside - shifted, 4),
            "goal": "shifted AUROC within 0.02 of in-distribution; above both baselines "
                    "on both", "gap_met": inside - shifted <= 0.02,
            "beats_baselines": beats, "command": "clarion model shift --write-card"}


def table(check: dict[str, Any]) -> list[str]:
    """The check as Markdown lines (for the terminal and the report)."""
    names = {"model": "Clarion model", "logistic_latest": "Logistic, latest values",
             "ada_points": "ADA risk test (points)"}
    lines = ["| set | method | AUROC | AUPRC | ECE |", "|---|---|---:|---:|---:|"]
    for site in check["sites"]:
        for key, m in site["metrics"].items():
            ece = f"{m['ece']:.4f}" if "ece" in m else "n/a"
            lines.append(f"| {site['site']} ({site['patients']} patients, "
                         f"{site['positive']} onsets) | {names[key]} | {m['auroc']:.4f} | "
                         f"{m['auprc']:.4f} | {ece} |")
    lines += ["", f"AUROC gap (in-distribution − shifted): {check['auroc_gap']:+.4f} "
              f"({'within' if check['gap_met'] else 'NOT within'} the goal of 0.02); the "
              f"model {'beats' if check['beats_baselines'] else 'does NOT beat'} both "
              "baselines on both sets."]
    lines += [f"- {s['site']}: {s['description']}" for s in check["sites"]]
    return lines

