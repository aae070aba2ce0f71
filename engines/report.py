"""`clarion model report`: the model against two baselines on the same held-out patients.

Writes report.md and PNGs (ROC, precision-recall, reliability, subgroup AUROC). The
held-out patients are generated afresh with a seed the training never used, so the report
is reproducible and independent of the training split. Needs the `report` extra
(matplotlib, scikit-learn).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engines.card import ModelCard
from engines.inputs import collate
from engines.onnxruntime import OnnxRuntimeEngine
from engines.training.baselines import LogisticBaseline, ada_points, latest_value_features
from engines.training.cohort import generate, varied
from engines.training.metrics import evaluate, reliability

NAMES = {"model": "Clarion model (ONNX Runtime FP32)", "model_int8": "Clarion model (INT8)",
         "logistic_latest": "Logistic regression, latest values",
         "ada_points": "ADA risk test (points)"}


def held_out(card: ModelCard, patients: int, seed: int) -> dict[str, Any]:
    """Scores of the model, its INT8 variant and both baselines on fresh patients."""
    from engines.training.train import to_inputs

    cohort = [p for p in generate(patients, seed, observation=varied) if not p.prevalent]
    inputs = to_inputs(card, cohort)
    labels = np.array([p.label for p in cohort], dtype=np.int64)
    risks = {}
    for key, precision in (("model", "fp32"), ("model_int8", "int8")):
        engine = OnnxRuntimeEngine(card, precision)
        risks[key] = np.concatenate([engine.infer(collate(card, inputs[i:i + 256]))
                                     for i in range(0, len(inputs), 256)])
    lr = LogisticBaseline.from_json(card.raw["baselines"]["logistic_latest"])
    risks["logistic_latest"] = lr.predict(latest_value_features(card, inputs))
    risks["ada_points"] = np.array([ada_points(card, i) for i in inputs], dtype=float)
    return {"cohort": cohort, "labels": labels, "risks": risks}


def write_report(card: ModelCard, out: Path, patients: int = 8000,
                 seed: int | None = None) -> Path:
    """Evaluate and write `out/report.md` with its figures. Returns the Markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    seed = seed if seed is not None else int(card.raw["training"]["seed"]) + 101
    data = held_out(card, patients, seed)
    labels, risks, cohort = data["labels"], data["risks"], data["cohort"]
    metrics = evaluate(risks, labels, cohort)
    out.mkdir(parents=True, exist_ok=True)

    fig, ax = plt.subplots(figsize=(5, 5))
    for key, risk in risks.items():
        fpr, tpr, _ = roc_curve(labels, risk)
        ax.plot(fpr, tpr, label=f"{NAMES[key]} ({metrics[key]['auroc']:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    for key, risk in risks.items():
        precision, recall, _ = precision_recall_curve(labels, risk)
        ax.plot(recall, precision, label=f"{NAMES[key]} ({metrics[key]['auprc']:.3f})")
    ax.axhline(labels.mean(), linestyle=":", color="grey")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "pr.png", dpi=120)
    plt.close(fig)

    bins = reliability(risks["model"], labels)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], "o-",
            label=f"model (ECE {metrics['model']['ece']:.3f})")
    top = max(max(b["predicted"] for b in bins), max(b["observed"] for b in bins)) * 1.1
    ax.plot([0, top], [0, top], ":", color="grey", label="perfect calibration")
    ax.set(xlabel="Predicted risk (decile mean)", ylabel="Observed rate",
           title="Reliability (deciles of predicted risk)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=120)
    plt.close(fig)

    groups = list(metrics["model"]["subgroup_auroc"])
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(risks)
    for n, key in enumerate(risks):
        values = [metrics[key]["subgroup_auroc"][g] or 0 for g in groups]
        ax.bar(np.arange(len(groups)) + n * width, values, width, label=NAMES[key])
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups)
    ax.set(ylim=(0.5, 1.0), ylabel="AUROC", title="AUROC by subgroup")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "subgroups.png", dpi=120)
    plt.close(fig)

    beats = all(metrics["model"][m] > metrics[b][m] for b in ("logistic_latest", "ada_points")
                for m in ("auroc", "auprc"))
    lines = [
        f"# {card.display} ({card.id} {card.version}) — evaluation report", "",
        f"> {card.disclaimer}", "",
        f"Held-out patients: {len(labels)} synthetic patients without diabetes at the index "
        f"date (generator seed {seed}, not used in training), {int(labels.sum())} with onset "
        f"within {card.horizon} ({labels.mean():.1%}).", "",
        "| method | AUROC | AUPRC | ECE | Brier |", "|---|---:|---:|---:|---:|"]
    for key in risks:
        m = metrics[key]
        calibration = (f"{m['ece']:.4f} | {m['brier']:.4f}" if "ece" in m
                       else "n/a (points) | n/a (points)")
        lines.append(f"| {NAMES[key]} | {m['auroc']:.4f} | {m['auprc']:.4f} | {calibration} |")
    lines += ["", "ECE and Brier score apply to probabilities; the ADA risk test is a points "
              "score.", "",
              f"The model {'beats' if beats else 'does NOT beat'} both baselines on AUROC "
              "and AUPRC.", "", "## Subgroup AUROC", "",
              "| method | " + " | ".join(groups) + " |",
              "|---|" + "---:|" * len(groups)]
    for key in risks:
        values = metrics[key]["subgroup_auroc"]
        lines.append(f"| {NAMES[key]} | " + " | ".join(
            f"{values[g]:.3f}" if values[g] is not None else "n/a" for g in groups) + " |")
    lines += ["", "## On feeds unlike ours", ""]
    shift = card.raw.get("shift")
    if shift:
        lines += [f"From the model card (`{shift['command']}`): patients of each site sent "
                  "through the whole HL7 chain (receipt, inbox, processing, the store, the "
                  "app's feature cache) and scored by the shipped model.", ""]
        lines += shift["table"]
    else:
        lines += ["Not measured for this model file: run `clarion model shift --write-card`."]
    lines += ["", "## Calibration", "", "| decile | mean predicted | observed | n |",
              "|---:|---:|---:|---:|"]
    lines += [f"| {i + 1} | {b['predicted']:.3f} | {b['observed']:.3f} | {b['n']} |"
              for i, b in enumerate(bins)]
    lines += ["", "![ROC](roc.png) ![Precision-recall](pr.png)", "",
              "![Reliability](reliability.png) ![Subgroups](subgroups.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def classifier_report(card: ModelCard) -> str:
    """An ECG model's test figures from its card, per class, beside the published ones."""
    metrics = card.raw["metrics"]
    lines = [f"# {card.display} ({card.id} {card.version})", "",
             f"Test: {metrics['test']}. Data: {card.raw.get('data', '')}.", "",
             "| class | support | Se % | PPV % | F1 % |", "|---|---:|---:|---:|---:|"]
    for name, row in metrics["classes"].items():
        cells = [str(row["support"])] + ["—" if row[k] is None else f"{row[k]:.1f}"
                                         for k in ("se", "ppv", "f1")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Overall accuracy {metrics['accuracy']:.1f} %."]
    if "decision" in metrics:
        lines.append(f"Decision: {metrics['decision']}.")
    timing = card.raw.get("supraventricular")
    if timing:
        lines.append(f"S by timing: the interval before the beat under "
                     f"{timing['max_pre_over_ref']:.0%} of the reference cycle (the median "
                     f"of the longest {timing['ref_fraction']:.0%} of its block's intervals), "
                     f"not in AF (the rhythm model's call, with under "
                     f"{timing['max_af_regular_share']:.0%} of the intervals within "
                     f"{timing['regular_within']:.1%} of the median); thresholds chosen on "
                     f"{timing['chosen_on'].split(':')[0]}.")
    if "model_alone" in metrics:
        alone = metrics["model_alone"]["classes"]
        lines.append("The network alone: " + ", ".join(
            f"{c} F1 {alone[c]['f1']:.1f}" for c in ("S", "V") if c in alone)
            + f", accuracy {metrics['model_alone']['accuracy']:.1f} %.")
    if "challenge_f1" in metrics:
        lines.append(f"Challenge F1 (mean of N, A, O): {metrics['challenge_f1']:.3f}.")
    if "mitdb_af_records" in metrics:
        m = metrics["mitdb_af_records"]
        lines.append(f"MIT-BIH AF records, {m['windows']} 30-s windows: AF Se {m['af_se']} %, "
                     f"PPV {m['af_ppv']} %, not-AF Sp {m['not_af_sp']} %.")
    published = card.raw.get("published", {})
    if published and "S" in metrics["classes"]:
        def f1(se: float, ppv: float) -> float:
            return 2 * se * ppv / (se + ppv)

        ours = metrics["classes"]
        lines += ["", "| | accuracy % | S Se / PPV / F1 | V Se / PPV / F1 |", "|---|---:|---|---|",
                  f"| Clarion | {metrics['accuracy']:.1f} | {ours['S']['se']:.1f} / "
                  f"{ours['S']['ppv']:.1f} / {ours['S']['f1']:.1f} | {ours['V']['se']:.1f} / "
                  f"{ours['V']['ppv']:.1f} / {ours['V']['f1']:.1f} |"]
        for who, row in published.items():
            (sse, sppv), (vse, vppv) = row["S"], row["V"]
            lines.append(f"| {who} | {row['accuracy']:.1f} | {sse} / {sppv} / "
                         f"{f1(sse, sppv):.1f} | {vse} / {vppv} / {f1(vse, vppv):.1f} |")
    elif published:
        for who, row in published.items():
            lines.append(f"Published: {who}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    gate = card.raw.get("int8_gate")
    if gate:
        lines += ["", f"INT8: mean KL {gate['mean_kl']}, macro-F1 drop {gate['macro_f1_drop']} "
                      f"points — {'passed, shipped' if gate['passed'] else 'refused, not shipped'}."]
    return "\n".join(lines) + "\n"
