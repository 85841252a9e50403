"""A count model for score-based readouts: how many boundaries an instance of ``T`` rows has.

Fitted on the fit split's boundary counts against their lengths in rows (a Poisson regression of
the count on ``log T``, :func:`tapos.data.priors.poisson_fit`, the rule of the ``prior`` parser's
``count=length`` line): on real TAPOS the duration alone predicts the count well enough to score
a GEBD average of 0.63 with equally spaced boundaries (benchmarks/results/real_tapos.md). A method
with a per-row boundary score then keeps that many of its strongest peaks
(:func:`tapos.parse.segments.top_peaks`) instead of every peak above a threshold.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tapos.data.priors import poisson_fit


def fit_count_model(dataset) -> Optional[tuple]:
    """``(a, b)`` of ``E[count] = exp(a + b log T)`` over the instances of ``dataset`` (a
    ``tapos.data.FeatureDataset``: rows from the cache index, counts from the annotations);
    None when every instance has the same length."""
    rows = np.array([dataset.reader.info(i.key).num_rows for i in dataset.instances], dtype=np.float64)
    counts = np.array([len(i.boundaries) for i in dataset.instances], dtype=np.float64)
    return poisson_fit(np.log(np.maximum(rows, 1.0)), counts)


def expected_count(model: Optional[tuple], rows: int, fallback: int = 1) -> int:
    """The rounded expected count for ``rows`` rows (``fallback`` without a model)."""
    if model is None:
        return int(fallback)
    a, b = model
    return int(np.floor(np.exp(a + b * np.log(max(rows, 1))) + 0.5))
