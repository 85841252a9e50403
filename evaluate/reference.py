"""Reference lines: what content-free boundaries score under the same protocol, beside a method.

Three lines (:func:`reference_lines`), each from :mod:`tapos.data.priors`:

- ``prior``: the training split's median boundary count, equally spaced (the ``prior`` parser's
  default);
- ``prior-best``: the count in :data:`COUNT_CANDIDATES` with the best average F1 over the
  relative thresholds *on the training split* (still content-free, and chosen where no method is
  reported), equally spaced;
- ``prior-length``: the count expected for each instance's duration (a Poisson regression of
  the count on the log duration, fitted on the training split), equally spaced: content-free, but
  it knows how long the video is. On real TAPOS it is the strongest of the three (its GEBD average
  is above most published methods': benchmarks/results/real_tapos.md);
- ``oracle-count``: the evaluated instance's own count, equally spaced. It reads the evaluated
  split, so it is a ceiling for count-only parsing, never a method.

A method's margin (:func:`margins`) is its headline numbers minus a train-only line's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from tapos.data.priors import BoundaryPrior, fit_prior, oracle_count_predictions, prior_predictions

from .protocols import EvaluationResult, evaluate_tapos
from .registry import get_protocol

COUNT_CANDIDATES = tuple(range(0, 11))  # counts prior-best tries on the training split
TRAIN_LINES = ("prior", "prior-best", "prior-length")  # the lines a method's margin is measured against


@dataclass
class ReferenceLine:
    name: str                   # "prior", "prior-best" or "oracle-count"
    label: str                  # how tables print it
    result: EvaluationResult
    prior: Optional[BoundaryPrior] = None

    def to_json(self) -> dict:
        out = {"label": self.label, "headline": headline(self.result), **self.result.to_json()}
        if self.prior is not None:
            out["prior"] = self.prior.to_json()
        return out


def headline(result: EvaluationResult) -> dict:
    """The numbers papers quote: F1 at the tightest relative threshold and the average F1 (GEBD);
    the TAPOS protocol adds the average over the absolute thresholds."""
    f1 = result.relative.f1
    out = {"f1@0.05": float(f1[0]), "avg_f1_rel" if result.absolute is not None else "avg_f1": float(f1.mean())}
    if result.absolute is not None:
        out["avg_f1_abs"] = float(result.absolute.f1.mean())
    return out


def margins(result: EvaluationResult, lines: list) -> dict:
    """``{line name: {number: method - line}}`` against the train-only lines."""
    mine = headline(result)
    return {ln.name: {k: mine[k] - v for k, v in headline(ln.result).items()}
            for ln in lines if ln.name in TRAIN_LINES}


def best_count(train, candidates=COUNT_CANDIDATES) -> int:
    """The count whose equally spaced boundaries score the best average relative F1 on ``train``
    (``Instance`` records, TAPOS protocol; the first of the best on ties)."""
    by_key = {i.key: i for i in train}
    scores = []
    for k in candidates:
        preds = prior_predictions(BoundaryPrior(count=k), by_key.values())
        scores.append(evaluate_tapos(by_key, preds, absolute=()).relative.f1.mean())
    return int(candidates[int(np.argmax(scores))])


def reference_lines(protocol, instances, train=None, truth=None, **options) -> list:
    """The reference lines for the evaluated ``instances`` (``Instance`` records), scored by
    ``protocol`` (a registered name or a ``Protocol``) against ``truth`` (what its ``score``
    reads; default ``{key: Instance}`` of ``instances``) with its ``options``. ``train``: the
    instances the prior reads (None: no prior lines, only oracle-count)."""
    instances = list(instances)
    protocol = get_protocol(protocol)
    seconds = protocol.seconds
    truth = {i.key: i for i in instances} if truth is None else truth

    def score(preds):
        return protocol.score(truth, preds, **options)

    lines = []
    if train:
        median = fit_prior(train)
        best = fit_prior(train, count=best_count(train))
        length = fit_prior(train, count="length")
        for name, prior in (("prior", median), ("prior-best", best), ("prior-length", length)):
            label = f"{name}: {prior.describe()}" + (", the count best on train" if name == "prior-best" else "")
            lines.append(ReferenceLine(name, label, score(prior_predictions(prior, instances, seconds)), prior))
    lines.append(ReferenceLine("oracle-count", "oracle-count: each instance's true count, equally spaced "
                                               "(reads the evaluated split)",
                               score(oracle_count_predictions(instances, seconds))))
    return lines
