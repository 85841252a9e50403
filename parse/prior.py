"""The prior: content-free boundaries, the chance line every parser must beat.

It never looks at the features. ``fit`` reads the training split's boundary counts and relative
positions (:mod:`tapos.data.priors`); ``predict`` gives every instance the same relative
boundaries, scaled to its length. On real TAPOS two equally spaced boundaries score about as well
on the GEBD average as the label-free baseline PA (benchmarks/results/real_tapos.md), so a method
that does not beat this line has learned nothing about where sub-actions change.

It is a parser like the others (``tapos-parse train/predict``, ``tapos-tsn --sampling parsed``),
with two differences: it reads the instance's annotation record when predicting (its length and,
with ``count=class-median``, its class: never use that count for ``tapos-tsn``, whose task is
the class), and its ``reads_features`` is False, so tests and tables treat it as chance.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from tapos.data.annotations import UNKNOWN_ACTION
from tapos.data.priors import COUNT_RULES, POSITION_RULES, BoundaryPrior, check_rules, fit_prior

from .base import FitOptions, Parser, fit_once
from .registry import register


@register
class PriorParser(Parser):
    name = "prior"
    supervision = "boundaries"  # their count per instance and relative positions; nothing of the video
    reads_features = False
    normalize = False
    DEFAULTS = {
        "count": "median",      # boundaries per instance: the training split's median, mean, class-median
                                # (the instance's class's median: reads its class label), length (the
                                # count expected for the instance's duration, a Poisson fit on the
                                # training split), or an integer; "auto": chosen on the selection split
                                # among TUNABLE
        "positions": "uniform",  # uniform: equally spaced; quantiles: the training boundaries' quantiles
                                 # of relative position
    }
    TUNABLE = {"count": ("median", "mean", "length", 1, 2, 3, 4, 5, 6)}
    COUNT_RULES = COUNT_RULES
    POSITION_RULES = POSITION_RULES

    def __init__(self, **config):
        super().__init__(**config)
        if self.config["count"] != "auto":
            check_rules(self.config["count"], self.config["positions"], self.name)
        self.stats: Optional[BoundaryPrior] = None

    def fit(self, train, val=None, opts=None) -> list:
        opts = opts or FitOptions()

        def run():
            self.prepare(train, opts)
            self.stats = fit_prior(train.instances)

        return fit_once(self, train, val, opts, run)

    def prior(self) -> BoundaryPrior:
        """The fitted statistics under the current count and position options."""
        return dataclasses.replace(self.stats, count=self.option("count"), positions=self.config["positions"])

    def predict(self, features: np.ndarray, frames=None, instance=None) -> np.ndarray:
        """The prior's boundaries for an instance of this length: the annotation's ``total_frames``
        when ``instance`` is given, else the rows' span (``frames``: one row spacing past the last)."""
        prior = self.prior()
        features = self.transform(features)  # only checks the width: the prior reads no feature
        if instance is not None:
            return prior.boundaries(instance)
        n = len(features)
        if n < 2:
            return np.zeros(0, dtype=np.float64)
        frames = np.arange(n, dtype=np.float64) if frames is None else np.asarray(frames, dtype=np.float64)
        length = frames[-1] + (frames[-1] - frames[0]) / (n - 1)
        return prior.boundaries(_Unseen(length))

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError("prior predicts in frames (predict), not rows")

    def extra_state(self) -> dict:
        return {"stats": _to_state(self.stats)}

    def load_extra_state(self, state: dict) -> None:
        self.stats = _from_state(state["stats"])


@dataclasses.dataclass
class _Unseen:
    """An instance known only by its length in frames (a video of your own): no class, and no
    duration (count "length" falls back to the median)."""

    total_frames: float
    action: int = UNKNOWN_ACTION
    duration: Optional[float] = None


def _to_state(stats: BoundaryPrior) -> dict:
    """The statistics as tensors and numbers (``model.pt`` loads with ``weights_only=True``)."""
    import torch

    raw = stats.to_json()
    classes = sorted(stats.class_counts)
    return {"median": raw["counts"]["median"], "mean": raw["counts"]["mean"],
            "classes": torch.tensor(classes, dtype=torch.int64),
            "class_counts": torch.tensor([stats.class_counts[a] for a in classes], dtype=torch.int64),
            "quantiles": None if stats.quantiles is None else torch.from_numpy(np.asarray(stats.quantiles)),
            "length_model": None if stats.length_model is None else torch.tensor(stats.length_model,
                                                                                 dtype=torch.float64)}


def _from_state(state: dict) -> BoundaryPrior:
    q, lm = state["quantiles"], state.get("length_model")
    return BoundaryPrior(counts={"median": int(state["median"]), "mean": int(state["mean"])},
                         class_counts=dict(zip(state["classes"].tolist(), state["class_counts"].tolist())),
                         quantiles=None if q is None else q.numpy(),
                         length_model=None if lm is None else tuple(lm.tolist()))
