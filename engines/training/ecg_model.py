"""The ECG networks (PyTorch; training only — serving runs the exported ONNX).

Both are small 1-D ResNets (He et al. 2016, as in Hannun et al. 2019 for single-lead ECG):
a strided stem, residual stages that halve the length and widen the channels, global
average pooling (so the exported graph takes any strip length), then a linear head. Each
ends in a softmax: the graph's output `probs` is the class probabilities.

- `BeatNet` reads a beat window (with the card's template, a second channel: the beat less
  the patient's usual beat) and the RR features (engines/signals.py); the RR features
  carry most of what tells a premature supraventricular beat from a normal one (its shape
  is normal, its timing is not), so they join the head after a small layer of their own.
- `RhythmNet` reads a whole strip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from engines.signals import SignalSpec

if TYPE_CHECKING:
    from engines.card import ModelCard


class _Block(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv1d(channels_in, channels_out, kernel, stride, pad, bias=False),
            nn.BatchNorm1d(channels_out), nn.ReLU(),
            nn.Conv1d(channels_out, channels_out, kernel, 1, pad, bias=False),
            nn.BatchNorm1d(channels_out))
        self.skip = nn.Identity() if stride == 1 and channels_in == channels_out else \
            nn.Sequential(nn.Conv1d(channels_in, channels_out, 1, stride, bias=False),
                          nn.BatchNorm1d(channels_out))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


def _trunk(widths: tuple[int, ...], kernel: int, stem_kernel: int,
           stem_stride: int, channels_in: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv1d(channels_in, widths[0], stem_kernel, stem_stride, stem_kernel // 2,
                  bias=False),
        nn.BatchNorm1d(widths[0]), nn.ReLU()]
    channels = widths[0]
    for width in widths:
        layers.append(_Block(channels, width, kernel, 2))
        channels = width
    return nn.Sequential(*layers)


BEAT_WIDTHS = (16, 24, 32, 48)
FIRST_BEAT_WIDTHS = (32, 48, 64, 96)  # the first beat model's (cards without network)


class BeatNet(nn.Module):
    """Beat window [B, channels, W] + RR features [B, F] → class probabilities [B, C]."""

    def __init__(self, classes: int, rr_features: int, channels: int = 1,
                 widths: tuple[int, ...] = BEAT_WIDTHS) -> None:
        super().__init__()
        self.trunk = _trunk(widths, kernel=7, stem_kernel=11, stem_stride=1,
                            channels_in=channels)
        self.rr = nn.Sequential(nn.Linear(rr_features, 32), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(widths[-1] + 32, 64), nn.ReLU(),
                                  nn.Dropout(0.3), nn.Linear(64, classes))

    def logits(self, beat: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        shape = self.trunk(beat).mean(dim=2)
        return self.head(torch.cat([shape, self.rr(rr)], dim=1))

    def forward(self, beat: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(beat, rr), dim=1)


class RhythmNet(nn.Module):
    """Strip [B, 1, L] → class probabilities [B, C]."""

    def __init__(self, classes: int, widths: tuple[int, ...] = (24, 32, 48, 64, 96)) -> None:
        super().__init__()
        self.trunk = _trunk(widths, kernel=9, stem_kernel=15, stem_stride=2)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(2 * widths[-1], classes))

    def logits(self, strip: torch.Tensor) -> torch.Tensor:
        features = self.trunk(strip)
        # Mean and max over time: the mean reads the strip's rhythm as a whole, the max
        # an event anywhere in it. Zero padding lowers the mean the same way in training
        # and in use (strips are padded to the card's length either way).
        return self.head(torch.cat([features.mean(dim=2), features.amax(dim=2)], dim=1))

    def forward(self, strip: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(strip), dim=1)


def from_onnx(net: nn.Module, path: str) -> nn.Module:
    """`net` (built with the card's widths) holding the weights of a shipped FP32 ONNX file,
    in eval mode: for running the shipped model under PyTorch (the benchmarks' eager and
    CUDA rows) without a checkpoint beside it. The exporter folded each BatchNorm into the
    convolution before it (`<conv>.weight`, `<conv>.weight_bias`); the BatchNorm is kept as
    an identity scale plus that bias, so the arithmetic is the exported graph's."""
    import onnx
    from onnx import numpy_helper

    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in onnx.load(path).graph.initializer}
    modules = dict(net.named_modules())

    def take(key: str, into: torch.Tensor) -> None:
        found = weights.get(key)
        if found is None or found.shape != into.shape:
            raise ValueError(f"{path}: the network's {key} {tuple(into.shape)} has no match "
                             f"in the file ({'absent' if found is None else tuple(found.shape)})"
                             "; build the network with the card's classes and widths")
        into.copy_(found)

    loaded = set()
    with torch.no_grad():
        for name, module in modules.items():
            if isinstance(module, nn.Linear):
                take(f"{name}.weight", module.weight)
                take(f"{name}.bias", module.bias)
                loaded.add(name)
            elif isinstance(module, nn.Conv1d):
                take(f"{name}.weight", module.weight)
                parent, _, index = name.rpartition(".")
                norm = modules[f"{parent}.{int(index) + 1}"]
                assert isinstance(norm, nn.BatchNorm1d), name
                assert norm.running_mean is not None and norm.running_var is not None
                norm.weight.fill_(1.0)
                take(f"{name}.weight_bias", norm.bias)
                norm.running_mean.zero_()
                norm.running_var.fill_(1.0 - norm.eps)  # so that sqrt(var + eps) is exactly 1
                loaded.add(name)
    unused = {n.rsplit(".", 1)[0] for n in weights if n.endswith(".weight")} - loaded
    if unused:
        raise ValueError(f"{path}: weights for no layer of the network: {sorted(unused)}")
    return net.eval()


def network(card: ModelCard) -> nn.Module:
    """The network a card's model was exported from, untrained: its classes, and for the
    beat model its input channels, RR features and widths (`network.widths` on the card)."""
    widths = tuple(card.raw.get("network", {}).get("widths", ()))
    if card.kind == "ecg_beats":
        spec = SignalSpec.from_card(card.raw["signal"])
        return BeatNet(len(card.classes), len(spec.rr), spec.beat_channels,
                       widths or FIRST_BEAT_WIDTHS)
    return RhythmNet(len(card.classes), widths) if widths else RhythmNet(len(card.classes))


def shipped(card: ModelCard) -> nn.Module:
    """The card's shipped FP32 model under PyTorch, in eval mode (`from_onnx`)."""
    return from_onnx(network(card), str(card.path("fp32")))
