"""PA, the GEBD unsupervised baseline: at each frame, the dissimilarity between the mean feature
of the frames before and of the frames after; local maxima above a threshold are boundaries.
No training (``fit`` only records the feature width).

Its lengths (the window, the spacing of boundaries) are in seconds by default, as are those of the
other label-free parsers (:mod:`tapos.parse.lengths`): sub-actions last about as long whatever the
instance's length, and a cache at stride 3 gets the same windows in time as one at stride 1.
GEBD's 5 rows (``--preset paper``) are 0.17 s at 30 fps: 15 boundaries per instance on TAPOS's
structure against 2.3 true; fractions of the instance give every instance about the same count."""
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
        "window": "1.5s",     # averaged on each side: seconds ("1.5s"), a fraction 0 < f < 1 of the
                              # instance's rows, or a whole number of rows (tapos.parse.lengths). On
                              # TAPOS's structure (train split): 1.0x the true count, its correlation
                              # with the truth 0.62; as a fraction (0.12) 1.3x but correlation 0.05;
                              # GEBD's 5 rows (0.17 s at 30 fps) 7x. The synthetic benchmark's
                              # sub-actions last a third as long: 0.4x there (use 0.12 on it)
        "threshold": 0.5,     # a peak must reach mean + threshold * std of the instance's scores (GEBD's
                              # baseline value: label-free); "auto" (with --select-on dev): chosen there
        "min_distance": "1.5s",  # between two boundaries (the higher peak wins): seconds, a fraction of
                              # the instance's rows or a whole number of rows
    }
    TUNABLE = {"threshold": (0.5, 0.0, 0.25, 1.0, 1.5, 2.0)}
    PRESETS = {"paper": {"threshold": 0.5, "window": 5, "min_distance": 5}}  # GEBD's baseline: fixed rows and threshold

    def __init__(self, **config):
        super().__init__(**config)
        check_length(self.name, "window", self.config["window"])
        check_length(self.name, "min_distance", self.config["min_distance"])

    def fit(self, train, val=None, opts=None) -> list:
        opts = opts or FitOptions()
        return fit_once(self, train, val, opts, lambda: self.prepare(train, opts))

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        T = len(x)
        s = change_score(x, length_rows(self.config["window"], T, rate=self.rate))
        thr = s.mean() + self.option("threshold") * s.std()
        return pick_peaks(s, thr, length_rows(self.config["min_distance"], T, rate=self.rate))
