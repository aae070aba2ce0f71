"""The T2D risk network (PyTorch; training only — serving runs the exported ONNX).

A naive transformer over 2,048 events costs ~43 ms in ONNX Runtime on 2 cores (DESIGN.md).
This network reads a handful of per-code summaries of the aligned timeline instead (ages
are years before now; the inputs are most recent first, so a code's first occurrence is
its latest): per vocabulary code the latest value, whether it is present, years since it,
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

The aggregation reads each event a bounded number of times, with two scatter operations
and no [events x vocabulary] one-hot: one ScatterElements (min) finds each code's latest
event, and one ScatterND adds 3-wide rows (count, value, age) per code; the latest value
and its age are then gathered. ONNX Runtime's scatter kernels cost ~3.5 ns per element, so
the earlier form, with one scatter per sum (seven), took 0.080 ms at 2,048 events on 2
cores and this one 0.060 ms; the one-hot matrix-product form was slower than both. (In
PyTorch eager the seven-scatter form is the faster one; bench/inference.py times both and
compares ONNX Runtime against the faster.) The cost barely grows with history length, and
the graph has a dynamic N with nothing baked in.
Also measured and rejected (2 cores): runs of one code found by NonZero, sums by CumSum and
scatters over the runs only (grows 15 µs from 16 to 2,048 events against 26, but the
export has 133 nodes against 73: 61 against 36 µs at 16 events, 78 against 63 at 2,048);
and "first event of its code" flags on code-grouped inputs with one 6-wide ScatterND
(ONNX Runtime's scatter cost is per element, not per row: 128 µs at 2,048); and a
vocabulary-major one-hot ([batch, vocabulary, events], so broadcasts run along the events)
with ArgMax for the latest and one MatMul for the sums: exact, 53 nodes, 9 % faster at 16
events but 31 % slower at 2,048 (35 % for 13 rows): its Equal, Cast, ArgMax and MatMul over
vocabulary x events cost more per event than the two scatters.
tests/engines/test_model_graph.py checks the exported graph against a NumPy reading of
these definitions.
"""

from __future__ import annotations

import torch
from torch import nn

WINDOW_YEARS = 10.01  # events older than the card's 10-year window are ignored
PER_CODE = 5  # latest, present, years since / 10 (0 if never), delta, slope


class T2DNet(nn.Module):
    """Per-code timeline summaries, wide-and-deep head. Inputs as in engines/inputs.py;
    output: calibrated risk in [0, 1]."""

    # Buffers (registered in __init__; declared here for the type checker).
    shift: torch.Tensor
    scale: torch.Tensor
    real_code: torch.Tensor
    calib_a: torch.Tensor
    calib_b: torch.Tensor

    def __init__(self, vocab_size: int, static_size: int, hidden: int = 16) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        features = PER_CODE * vocab_size + static_size
        # Standardization of the features (fitted on the training split, in the graph).
        self.register_buffer("shift", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        # 1 for every real code, 0 for the padding code (which carries the invalid events).
        real_code = torch.ones(vocab_size)
        real_code[0] = 0.0
        self.register_buffer("real_code", real_code, persistent=False)
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

    def features(self, codes: torch.Tensor, values: torch.Tensor, ages: torch.Tensor,
                 static: torch.Tensor) -> torch.Tensor:
        """The raw (unstandardized) features: [batch, 5 x vocab + static]."""
        batch, events = codes.shape
        vocab = self.vocab_size
        valid = (codes > 0) & (ages >= 0.0) & (ages < WINDOW_YEARS)
        code = torch.where(valid, codes, 0)  # invalid events count under the padding code 0
        # The latest event per code is its first (inputs are most recent first); `events`
        # where the code is absent.
        position = torch.arange(events, device=codes.device).expand(batch, events)
        first_at = torch.full((batch, vocab), events, dtype=codes.dtype, device=codes.device
                              ).scatter_reduce(1, code, position, reduce="amin")
        present = (first_at < events).to(values.dtype) * self.real_code
        at = first_at.clamp(max=events - 1)
        latest = values.gather(1, at) * present
        # Years since the latest, 0 if never: "absent" is present = 0 alone, so removing a
        # code's events (the occlusion behind the top factors) lands on a state the model
        # has seen in training rather than on "measured ten years ago".
        since = ages.gather(1, at) * present
        # Count, value sum and age sum per code: one scatter of 3-wide rows (ScatterND).
        patient = torch.arange(batch, device=codes.device).unsqueeze(1).expand(batch, events)
        rows = torch.stack([torch.ones_like(values), values, ages], dim=2)
        sums = values.new_zeros(batch, vocab, 3).index_put(
            (patient, code), rows, accumulate=True) * self.real_code.unsqueeze(1)
        return self.summarize(latest, present, since, sums[..., 0], sums[..., 1],
                              sums[..., 2], static)

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

    def logit(self, codes: torch.Tensor, values: torch.Tensor, ages: torch.Tensor,
              static: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(codes, values, ages, static))

    def forward(self, codes: torch.Tensor, values: torch.Tensor, ages: torch.Tensor,
                static: torch.Tensor) -> torch.Tensor:
        logit = self.logit(codes, values, ages, static)
        return torch.sigmoid(self.calib_a * logit + self.calib_b).unsqueeze(-1)
