"""The T2D risk network (PyTorch; training only — serving runs the exported ONNX).

A naive transformer over 2,048 events costs ~43 ms in ONNX Runtime on 2 cores (DESIGN.md).
This network reads a handful of per-code summaries of the aligned timeline instead (ages
are years before now): per vocabulary code the latest value, whether it is present, years since it,
its change against the mean of the earlier values, and that change per year. These are
what a clinician reads off a chart ("HbA1c 6.3 %, 5.9 % a year ago"), and in the
generating process (engines/training/cohort.py) the 12-month risk is driven by the level
and the rise of glycaemia, BMI and the coded risk factors.

The head is "wide and deep": a linear path over the standardized features, fitted first
as a logistic regression, plus a small MLP whose output starts at zero and learns only
what the linear path misses. Wider variants were measured and rejected (train.py's
docstring): per-(time bucket, code) means and counts (456 more features) and a 64-unit
MLP over everything scored AUPRC 0.687 against 0.721 for the per-code summaries alone —
they overfit the ~2,300 positive training patients.

The aggregation reads the batch code-major (engines/inputs.py: each code's events together,
most recent first, and `ends`, where each code's run ends, as in a compressed sparse row
matrix): one running sum (CumSum) of 2-wide rows (value, age) over the events, read at the
two ends of each code's run, gives its sums; its count is the run's length and its latest
event the run's first. The codes are not an input: the runs carry them. No
scatter and no [events x vocabulary] one-hot: the per-event work is the CumSum alone, so
the cost barely grows with history length, and the graph has a dynamic N with nothing
baked in. The sort behind the layout is NumPy's radix sort of small integer keys, once per
patient in `encode` (~15 µs for 2,048 events).
Measured in ONNX Runtime on 2 cores, graphs interleaved (the virtual machine ran ~2x slower
than usual that day: read the figures against each other), 16 / 2,048 events: one patient
69 / 79 µs against 76 / 133 for the graph before it (on the two threads it ran on), and
eight patients (the top factors' call) 117 / 218 against 115 / 666. That graph found each
code's latest event with one ScatterElements (min) and summed 3-wide rows (count, value,
age) with one ScatterND, and ONNX Runtime's scatters cost ~3.5 ns per element; one scatter
per sum (seven) had been slower still, 0.080 against 0.060 ms at 2,048 events on a usual
day.
Also measured and rejected (2 cores): one-hot matrix products; runs of one code found by
NonZero, sums by CumSum and scatters over the runs only (grows 15 µs from 16 to 2,048
events against 26, but the export has 133 nodes against 73: 61 against 36 µs at 16 events,
78 against 63 at 2,048); "first event of its code" flags on code-grouped inputs with one
6-wide ScatterND (ONNX Runtime's scatter cost is per element, not per row: 128 µs at
2,048); and a vocabulary-major one-hot ([batch, vocabulary, events], so broadcasts run
along the events) with ArgMax for the latest and one MatMul for the sums: exact, 53 nodes,
9 % faster at 16 events but 31 % slower at 2,048 (35 % for 13 rows): its Equal, Cast,
ArgMax and MatMul over vocabulary x events cost more per event than the scatter graph's
two scatters.
The running sum's float32 rounding moves the risk by at most 1.9e-5 against the scatter
form on the 7,497 validation patients (AUROC and every metric on the card unchanged to 4
decimals).
tests/engines/test_model_graph.py checks the exported graph against a NumPy reading of
these definitions.
"""

from __future__ import annotations

import torch
from torch import nn

PER_CODE = 5  # latest, present, years since / 10 (0 if never), delta, slope


class T2DNet(nn.Module):
    """Per-code timeline summaries, wide-and-deep head. Inputs as in engines/inputs.py;
    output: calibrated risk in [0, 1]."""

    # Buffers (registered in __init__; declared here for the type checker).
    shift: torch.Tensor
    scale: torch.Tensor
    calib_a: torch.Tensor
    calib_b: torch.Tensor

    def __init__(self, vocab_size: int, static_size: int, hidden: int = 16) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        features = PER_CODE * vocab_size + static_size
        # Standardization of the features (fitted on the training split, in the graph).
        self.register_buffer("shift", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.wide = nn.Linear(features, 1)
        # Layers in forward order: the seed's random draws, and so a retrain's weights,
        # follow the order of creation.
        deep_in, deep_out = nn.Linear(features, hidden), nn.Linear(hidden, 1)
        nn.init.zeros_(deep_out.weight)  # the deep path starts silent
        nn.init.zeros_(deep_out.bias)
        self.net = nn.Sequential(nn.Dropout(0.1), deep_in, nn.GELU(), deep_out)
        # Platt scaling, fitted after training on held-out patients and folded into the graph.
        self.register_buffer("calib_a", torch.tensor(1.0))
        self.register_buffer("calib_b", torch.tensor(0.0))

    def features(self, values: torch.Tensor, ages: torch.Tensor, ends: torch.Tensor,
                 static: torch.Tensor) -> torch.Tensor:
        """The raw (unstandardized) features: [batch, 5 x vocab + static], from a code-major
        batch (engines/inputs.collate: each code's events between ends[c-1] and ends[c],
        most recent first)."""
        batch, events = values.shape
        starts = torch.cat([ends.new_zeros(batch, 1), ends[:, :-1]], dim=1)
        total = (ends - starts).to(values.dtype)
        present = (total > 0.5).to(values.dtype)
        # Value and age sums per code: a running sum over the events, read at both ends.
        rows = torch.stack([values, ages], dim=2)
        running = torch.cat([rows.new_zeros(batch, 1, 2), rows.cumsum(1)], dim=1)
        sums = (running.gather(1, ends.unsqueeze(2).expand(batch, self.vocab_size, 2))
                - running.gather(1, starts.unsqueeze(2).expand(batch, self.vocab_size, 2)))
        # The latest event of a code is the first of its run (0 where it has none).
        # Years since it, 0 if never: "absent" is present = 0 alone, so removing a code's
        # events (the occlusion behind the top factors) lands on a state the model has
        # seen in training rather than on "measured ten years ago".
        at = starts.clamp(max=events - 1)
        latest = values.gather(1, at) * present
        since = ages.gather(1, at) * present
        return self.summarize(latest, present, since, total, sums[..., 0], sums[..., 1],
                              static)

    @staticmethod
    def summarize(latest: torch.Tensor, present: torch.Tensor, since: torch.Tensor,
                  total: torch.Tensor, value_sum: torch.Tensor, age_sum: torch.Tensor,
                  static: torch.Tensor) -> torch.Tensor:
        """Per-code aggregates [batch, vocab] → the feature vector (adds the trend)."""
        # Trend: the latest value against the mean of the earlier ones, and per year.
        earlier = (total - present).clamp(min=1.0)
        earlier_mean = (value_sum - latest) / earlier
        earlier_age = (age_sum - since) / earlier
        has_trend = (total > 1.5).to(latest.dtype)
        delta = has_trend * (latest - earlier_mean)
        slope = has_trend * delta / (earlier_age - since).clamp(min=0.25)
        return torch.cat([latest, present, since / 10.0, delta, slope.clamp(-5.0, 5.0),
                          static], dim=1)

    def standardize(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.shift) / self.scale

    def head(self, raw: torch.Tensor) -> torch.Tensor:
        """Logit from raw features (training fits it on features computed once)."""
        x = self.standardize(raw)
        return (self.wide(x) + self.net(x)).squeeze(-1)

    def logit(self, values: torch.Tensor, ages: torch.Tensor, ends: torch.Tensor,
              static: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(values, ages, ends, static))

    def forward(self, values: torch.Tensor, ages: torch.Tensor, ends: torch.Tensor,
                static: torch.Tensor) -> torch.Tensor:
        logit = self.logit(values, ages, ends, static)
        return torch.sigmoid(self.calib_a * logit + self.calib_b).unsqueeze(-1)
