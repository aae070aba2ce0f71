"""Model cards: what a model is for, what it reads, how to act on its output.

A model directory holds `card.json`, the ONNX file(s) it names, and the validation
patients every non-reference engine must reproduce before it is used. Any ONNX model with
a card in this format can be dropped into `engines/models/<id>/` (or a directory named by
`--models`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).parent / "models"


@dataclass(frozen=True, slots=True)
class NumericInput:
    """A numeric input: canonical unit and the normalization the model was trained with."""

    unit: str
    mean: float
    sd: float
    low: float  # plausible range; values outside are treated as errors and dropped
    high: float


@dataclass(frozen=True, slots=True)
class Screening:
    """A test to recommend, the codes that show it was done, and the guideline behind it."""

    key: str
    name: str
    loinc: tuple[str, ...]
    source: str


@dataclass(frozen=True, slots=True)
class Tier:
    """A risk band: from `min_risk` up, with its words, icon and recommended screenings."""

    name: str
    min_risk: float
    words: str
    screenings: tuple[str, ...]


@dataclass(frozen=True)
class ModelCard:
    """A model's card (see engines/models/t2d/card.json for the full text).

    `kind` says what the model reads and returns: "timeline" (a patient's coded history,
    engines/inputs.py; the output `risk`, one per patient) or "ecg_beats" / "ecg_rhythm"
    (engines/signals.py; the output `probs`, one row of `classes` per beat or strip).
    """

    directory: Path
    id: str
    version: str
    display: str
    label: str
    horizon: str
    intended_use: str
    out_of_scope: str
    disclaimer: str
    vocabulary: tuple[str, ...]
    numeric: dict[str, NumericInput]
    static: tuple[str, ...]
    max_events: int
    window_years: float
    tiers: tuple[Tier, ...]
    screenings: dict[str, Screening]
    already_screened_days: int
    files: dict[str, str]
    sha256: dict[str, str]
    raw: dict[str, Any] = field(repr=False)
    kind: str = "timeline"
    output: str = "risk"
    classes: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ()

    @property
    def is_classifier(self) -> bool:
        """Whether the output is class probabilities ([B, C]) rather than a risk ([B])."""
        return bool(self.classes)

    def path(self, key: str) -> Path:
        return self.directory / self.files[key]

    def tier_for(self, risk: float) -> Tier | None:
        """The highest tier whose threshold the risk reaches (None: below every tier)."""
        for tier in sorted(self.tiers, key=lambda t: t.min_risk, reverse=True):
            if risk >= tier.min_risk:
                return tier
        return None

    def code(self, name: str) -> int:
        return self.vocabulary.index(name)

    def verify_files(self) -> list[str]:
        """Files whose SHA-256 differs from the card's (empty when all match)."""
        return [key for key, digest in self.sha256.items()
                if key in self.files and self.path(key).exists()
                and file_sha256(self.path(key)) != digest]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shipped_models(models_dir: Path = MODELS_DIR) -> list[str]:
    """The ids of the models under `models_dir` (each folder with a card), sorted."""
    if not models_dir.exists():
        return []
    return sorted(p.name for p in models_dir.iterdir() if (p / "card.json").exists())


def load_card(model: str | Path, models_dir: Path = MODELS_DIR) -> ModelCard:
    """Load a card by model id (under `models_dir`) or by directory path."""
    directory = Path(model) if Path(model).is_dir() else models_dir / str(model)
    path = directory / "card.json"
    if not path.exists():
        available = shipped_models(models_dir)
        raise FileNotFoundError(f"no model card at {path}; available models: "
                                f"{', '.join(available) or 'none'}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("kind", "timeline") != "timeline":
        return _signal_card(directory, data)
    inputs = data["inputs"]
    return ModelCard(
        directory=directory, id=data["id"], version=data["version"], display=data["display"],
        label=data["label"], horizon=data["horizon"], intended_use=data["intended_use"],
        out_of_scope=data["out_of_scope"], disclaimer=data["disclaimer"],
        vocabulary=tuple(inputs["vocabulary"]),
        numeric={k: NumericInput(v["unit"], v["mean"], v["sd"], v["range"][0], v["range"][1])
                 for k, v in inputs["numeric"].items()},
        static=tuple(inputs["static"]), max_events=int(inputs["max_events"]),
        window_years=float(inputs["window_years"]),
        tiers=tuple(Tier(t["name"], t["min_risk"], t["words"], tuple(t["screenings"]))
                    for t in data["tiers"]),
        screenings={k: Screening(k, v["name"], tuple(v["loinc"]), v["source"])
                    for k, v in data["screenings"].items()},
        already_screened_days=int(data["already_screened"]["within_days"]),
        files=dict(data["files"]), sha256=dict(data.get("sha256", {})), raw=data,
        input_names=("values", "ages", "ends", "static"))


def _signal_card(directory: Path, data: dict[str, Any]) -> ModelCard:
    """An ECG model's card: classes and a signal block instead of a vocabulary."""
    return ModelCard(
        directory=directory, id=data["id"], version=data["version"], display=data["display"],
        label=data["label"], horizon=data.get("horizon", "the recording"),
        intended_use=data["intended_use"], out_of_scope=data["out_of_scope"],
        disclaimer=data["disclaimer"], vocabulary=(), numeric={}, static=(), max_events=0,
        window_years=0.0,
        tiers=tuple(Tier(t["name"], t["min_risk"], t["words"], tuple(t["screenings"]))
                    for t in data.get("tiers", [])),
        screenings={k: Screening(k, v["name"], tuple(v.get("loinc", ())), v["source"])
                    for k, v in data.get("screenings", {}).items()},
        already_screened_days=int(data.get("already_screened", {}).get("within_days", 0)),
        files=dict(data["files"]), sha256=dict(data.get("sha256", {})), raw=data,
        kind=data["kind"], output=data.get("output", "probs"),
        classes=tuple(data["classes"]), input_names=tuple(data["input_names"]))
