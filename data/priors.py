"""Content-free boundaries: what a parser that never looks at the video predicts.

A :class:`BoundaryPrior` reads only the boundary counts and relative positions of training
instances (the statistics of the annotation file, no feature) and gives every instance of length
``n`` frames the same relative boundaries:

- **count**: ``"median"`` or ``"mean"`` (rounded) of the training instances' boundary counts,
  ``"class-median"`` (the median of the instance's class; the overall median for an instance of
  an unseen or unknown class), ``"length"`` (the instance's expected count given its duration:
  a Poisson regression of the count on the log duration, fitted on the training instances; the
  median when the duration is unknown), or a fixed integer ``k``;
- **positions**: ``"uniform"`` (``k`` equally spaced: ``i / (k + 1)``, i = 1..k) or
  ``"quantiles"`` (the ``i / (k + 1)`` quantiles of the training boundaries' relative positions).

Relative positions become annotation frames as ``p * n`` (fractional: a boundary is an instant,
as the clock places every predicted boundary) and seconds as ``p * duration``: the same instants
(:mod:`tapos.data.clock`: ``frame / rate``, with ``rate = n / duration``).
:func:`oracle_count_frames` is the evaluation-only reference: the *evaluated* instance's own
count, equally spaced. Scoring and choosing a count on a protocol is ``tapos.evaluate``'s
(:mod:`tapos.evaluate.reference`); the registered parser is ``tapos.parse``'s ``prior``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Iterable, Optional, Union

import numpy as np

from .annotations import UNKNOWN_ACTION
from .clock import DECIMALS
from .errors import TaposError
from .instances import boundary_positions

COUNT_RULES = ("median", "mean", "class-median", "length")  # or a non-negative integer
POSITION_RULES = ("uniform", "quantiles")
QUANTILE_GRID = 101  # the positions' quantile function is kept at 0, 1/100, ..., 1


def check_rules(count, positions: str, who: str = "prior") -> None:
    """A one-line error for a count or position rule the prior does not know."""
    is_int = isinstance(count, (int, np.integer)) and not isinstance(count, bool)
    if not (count in COUNT_RULES or (is_int and count >= 0)):
        raise TaposError(f"{who}: count must be one of {', '.join(COUNT_RULES)} or an integer >= 0, got {count!r}")
    if positions not in POSITION_RULES:
        raise TaposError(f"{who}: positions must be one of {', '.join(POSITION_RULES)}, got {positions!r}")


def place(fractions, length: float, decimals: Optional[int] = None) -> np.ndarray:
    """Relative positions -> boundaries of an instance of ``length`` (frames or seconds): ``p *
    length``, not rounded to a whole frame (a boundary is an instant), sorted, without repeats;
    ``decimals``: rounded to that many (frames: the clock's ``DECIMALS``)."""
    out = np.asarray(fractions, dtype=np.float64) * float(length)
    return np.unique(out if decimals is None else np.round(out, decimals))


def uniform_fractions(k: int) -> np.ndarray:
    """``k`` equally spaced relative positions: ``i / (k + 1)``, i = 1..k."""
    return np.arange(1, int(k) + 1, dtype=np.float64) / (int(k) + 1)


@dataclass
class BoundaryPrior:
    """Boundary statistics of a training split; see the module."""

    count: Union[str, int] = "median"
    positions: str = "uniform"
    counts: dict = field(default_factory=dict)        # {"median": m, "mean": r}: the training statistics
    class_counts: dict = field(default_factory=dict)  # {action: median count} (known classes only)
    quantiles: Optional[np.ndarray] = None            # relative positions at QUANTILE_GRID levels
    length_model: Optional[tuple] = None              # (a, b): expected count exp(a + b log duration)

    def count_for(self, action: Optional[int] = None, duration: Optional[float] = None) -> int:
        """The number of boundaries given to an instance (of class ``action`` and ``duration``
        seconds, when known)."""
        if not isinstance(self.count, str):
            return int(self.count)
        if self.count == "class-median":
            return int(self.class_counts.get(action, self.counts["median"]))
        if self.count == "length":
            if duration is None or not duration > 0 or self.length_model is None:
                return int(self.counts["median"])
            a, b = self.length_model
            return int(np.floor(np.exp(a + b * np.log(duration)) + 0.5))
        return int(self.counts[self.count])

    def fractions(self, k: int) -> np.ndarray:
        """``k`` relative positions under the position rule."""
        levels = uniform_fractions(k)
        if self.positions == "uniform" or self.quantiles is None:
            return levels
        return np.interp(levels, np.linspace(0.0, 1.0, len(self.quantiles)), self.quantiles)

    def boundaries(self, instance, seconds: bool = False) -> np.ndarray:
        """One instance's boundaries: annotation frames, or seconds from its start."""
        duration = getattr(instance, "duration", None)
        return _place(self.fractions(self.count_for(instance.action, duration)), instance, seconds)

    def describe(self) -> str:
        """One line: e.g. ``"2 boundaries (train median), equally spaced"``."""
        k = self.count_for()
        if isinstance(self.count, str) and self.count == "class-median":
            what = f"each class's train median count ({k} for an unknown class)"
        elif isinstance(self.count, str) and self.count == "length":
            a, b = self.length_model or (float("nan"), float("nan"))
            what = f"round(exp({a:.2f} + {b:.2f} log duration)) boundaries (train Poisson fit)"
        else:
            what = f"{k} {'boundary' if k == 1 else 'boundaries'}" + (f" (train {self.count})" if isinstance(
                self.count, str) else "")
        return f"{what}, {'equally spaced' if self.positions == 'uniform' else 'at the train quantiles'}"

    def to_json(self) -> dict:
        return {"count": self.count, "positions": self.positions, "counts": dict(self.counts),
                "class_counts": {str(a): int(c) for a, c in self.class_counts.items()},
                "quantiles": None if self.quantiles is None else [float(q) for q in self.quantiles],
                "length_model": None if self.length_model is None else [float(v) for v in self.length_model]}

    @classmethod
    def from_json(cls, raw: Mapping) -> "BoundaryPrior":
        q, lm = raw.get("quantiles"), raw.get("length_model")
        return cls(raw["count"], raw["positions"], dict(raw["counts"]),
                   {int(a): int(c) for a, c in raw.get("class_counts", {}).items()},
                   None if q is None else np.asarray(q, dtype=np.float64), None if lm is None else tuple(lm))


def fit_prior(instances: Iterable, count: Union[str, int] = "median", positions: str = "uniform") -> BoundaryPrior:
    """The prior of a training split (``Instance`` records: only their boundaries, lengths and classes
    are read)."""
    check_rules(count, positions)
    instances = list(instances)
    if not instances:
        raise TaposError("prior: no training instances to read boundary counts from")
    n = np.array([len(i.boundaries) for i in instances], dtype=np.float64)
    counts = {"median": int(np.floor(np.median(n) + 0.5)), "mean": int(np.floor(n.mean() + 0.5))}
    by_class: dict = {}
    for inst, c in zip(instances, n):
        if inst.action != UNKNOWN_ACTION:
            by_class.setdefault(int(inst.action), []).append(c)
    class_counts = {a: int(np.floor(np.median(v) + 0.5)) for a, v in sorted(by_class.items())}
    pos = boundary_positions(instances)
    quantiles = np.quantile(pos, np.linspace(0.0, 1.0, QUANTILE_GRID)) if pos.size else None
    durations = np.array([i.duration for i in instances], dtype=np.float64)
    return BoundaryPrior(count, positions, counts, class_counts, quantiles, poisson_fit(np.log(durations), n))


def poisson_fit(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> Optional[tuple]:
    """``(a, b)`` of the Poisson regression ``E[y] = exp(a + b x)`` by Newton's method (None
    when ``x`` does not vary). Two parameters: a closed small loop, no solver dependency."""
    if x.size < 2 or np.ptp(x) == 0:
        return None
    X = np.stack([np.ones_like(x), x], axis=1)
    beta = np.array([np.log(max(y.mean(), 1e-3)), 0.0])
    for _ in range(iterations):
        mu = np.exp(np.clip(X @ beta, -30, 30))
        step = np.linalg.solve(X.T @ (X * mu[:, None]) + 1e-9 * np.eye(2), X.T @ (y - mu))
        beta = beta + step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[0]), float(beta[1])


def prior_predictions(prior: BoundaryPrior, instances: Iterable, seconds: bool = False) -> dict:
    """``{key: boundaries}`` for every instance: annotation frames, or seconds (``frame / fps``)."""
    return {i.key: prior.boundaries(i, seconds) for i in instances}


def oracle_count_predictions(instances: Iterable, seconds: bool = False) -> dict:
    """Evaluation only: each instance's own boundary count, equally spaced (reads the evaluated
    split), in frames or seconds."""
    return {i.key: _place(uniform_fractions(len(i.boundaries)), i, seconds) for i in instances}


def _place(fractions, instance, seconds: bool) -> np.ndarray:
    """In seconds, ``p * duration`` itself, unrounded: through ``frame / rate`` or a rounding, float
    noise would move a boundary that lies exactly on a tolerance's edge (the GEBD protocol compares
    with ``<=``)."""
    if seconds:
        return place(fractions, instance.duration)
    return place(fractions, instance.total_frames, DECIMALS)
