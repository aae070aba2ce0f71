"""One interface for every inference runtime."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from engines.card import ModelCard
from engines.inputs import example_batches


class EngineUnavailable(RuntimeError):
    """This runtime cannot run here (not installed, no GPU, failed validation ...)."""


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What an engine says about itself, for `clarion engines` and the status line."""

    name: str  # e.g. "onnxruntime-cpu", "onnxruntime-cpu-int8", "tensorrt"
    precision: str  # fp32, int8, fp16
    model_file: str
    details: dict[str, str] = field(default_factory=dict)


class Engine(ABC):
    """Load a model from its card, warm it up, score batches of collated inputs."""

    name: str = "engine"
    precision: str = "fp32"

    def __init__(self, card: ModelCard) -> None:
        self.card = card

    @abstractmethod
    def load(self) -> None:
        """Prepare the runtime (may build or deserialize); raise EngineUnavailable."""

    @abstractmethod
    def infer(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """The card's output for a batch of its inputs (`engines.inputs.example_batches`
        says what they look like): a risk per patient [B] for a timeline model, from
        `engines.inputs.collate`; class probabilities [B, C] for a classifier."""

    @abstractmethod
    def describe(self) -> EngineInfo:
        """Name, precision, model file and runtime details."""

    def close(self) -> None:  # noqa: B027 - most runtimes hold nothing to release
        """Release what the runtime holds (device memory; keep caches for the next start)."""

    def warm_up(self) -> None:
        """Run a few shapes once, so the first real patient is not the slow one."""
        for batch in example_batches(self.card):
            self.infer(batch)
