"""PA, the GEBD unsupervised baseline: at each frame, the dissimilarity between the mean feature
of the frames before and of the frames after; local maxima above a threshold are boundaries.
No training (``fit`` only records the feature width)."""
from __future__ import annotations

import numpy as np

from .base import FitOptions, Parser, fit_once
from .registry import register
from .segments import pick_peaks, window_means


def change_score(x: np.ndarray, window: int) -> np.ndarray:
    """``1 - cos(mean(x[t-w:t]), mean(x[t:t+w]))`` for every row t (0 at t = 0)."""
    before, after = window_means(x, window)
    num = (before * after).sum(1)
    den = np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1) + 1e-12
    score = 1.0 - num / den
    score[0] = 0.0
    return score


@register
class PAParser(Parser):
    name = "pa"
    supervision = "none"
    normalize = False  # cosine dissimilarity of raw features: nothing is learned
    DEFAULTS = {
        "window": 5,        # rows averaged on each side
        "threshold": 0.5,   # a peak must reach mean + threshold * std of the instance's scores (GEBD's
                            # baseline value: label-free); "auto" (with --select-on dev): chosen there
        "min_distance": 5,  # rows between two boundaries (the higher peak wins)
    }
    TUNABLE = {"threshold": (0.5, 0.0, 0.25, 1.0, 1.5, 2.0)}
    PRESETS = {"paper": {"threshold": 0.5}}  # GEBD's baseline: a fixed threshold

    def fit(self, train, val=None, opts=None) -> list:
        opts = opts or FitOptions()
        return fit_once(self, train, val, opts, lambda: self.prepare(train, opts))

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        s = change_score(x, int(self.config["window"]))
        thr = s.mean() + self.option("threshold") * s.std()
        return pick_peaks(s, thr, int(self.config["min_distance"]))
