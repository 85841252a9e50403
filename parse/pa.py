"""PA, the GEBD unsupervised baseline: at each frame, the dissimilarity between the mean feature
of the frames before and of the frames after; local maxima above a threshold are boundaries.
No training (``fit`` only records the feature width).

Its lengths (the window, the spacing of boundaries) are fractions of the instance by default, as
are those of the other label-free parsers (:mod:`tapos.parse.lengths`): an instance of 113 rows (the
synthetic benchmark) and one of 280 (TAPOS at a row per frame) get windows of the same share of
their duration, and a cache at stride 3 the same boundaries in time as at stride 1. Fixed row
counts over-parsed TAPOS's structure (a 5-row window at 30 fps is 0.17 s: 15 boundaries per
instance against 2.3 true)."""
from __future__ import annotations

import numpy as np

from .base import FitOptions, Parser, fit_once
from .lengths import check_length, length_rows
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
        "window": 0.12,       # rows averaged on each side: a fraction 0 < f < 1 of the instance's rows
                              # (at least 1), or a whole number of rows (the former default, 5, was
                              # 0.17 s at 30 fps: noise peaks over-parsed TAPOS's structure 7x; 0.12
                              # parses it 1.7x and the synthetic benchmark 0.7x, at strides 1 and 3)
        "threshold": 0.5,     # a peak must reach mean + threshold * std of the instance's scores (GEBD's
                              # baseline value: label-free); "auto" (with --select-on dev): chosen there
        "min_distance": 0.1,  # rows between two boundaries (the higher peak wins): a fraction of the
                              # instance's rows (so at most about 1 / f boundaries) or a whole number
    }
    TUNABLE = {"threshold": (0.5, 0.0, 0.25, 1.0, 1.5, 2.0)}
    PRESETS = {"paper": {"threshold": 0.5}}  # GEBD's baseline: a fixed threshold

    def __init__(self, **config):
        super().__init__(**config)
        check_length(self.name, "window", self.config["window"])
        check_length(self.name, "min_distance", self.config["min_distance"])

    def fit(self, train, val=None, opts=None) -> list:
        opts = opts or FitOptions()
        return fit_once(self, train, val, opts, lambda: self.prepare(train, opts))

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        T = len(x)
        s = change_score(x, length_rows(self.config["window"], T))
        thr = s.mean() + self.option("threshold") * s.std()
        return pick_peaks(s, thr, length_rows(self.config["min_distance"], T))
