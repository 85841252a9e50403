"""Recursive parsing of the temporal self-similarity matrix (TSM, label-free, after UBoCo): the
cosine similarity of every pair of standardised rows forms a T x T matrix; a checkerboard kernel
slid along its diagonal scores each row as a boundary (similar within the blocks before and after
it, dissimilar across); a segment is split at its strongest score and each half parsed again,
until a half would be shorter than ``min_length`` rows or the peak is not salient relative to the
instance's scores. No training (``fit`` records the standardisation statistics)."""
from __future__ import annotations

import numpy as np

from tapos.data.errors import TaposError

from .base import FitOptions, Parser, fit_once
from .registry import register


def self_similarity(x: np.ndarray) -> np.ndarray:
    """Cosine similarity ``(T, T)`` of the rows of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    unit = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    return unit @ unit.T


def kernel_weights(kernel: int, taper: float) -> np.ndarray:
    """Weight of each of the ``kernel`` offsets ``-h..h-1`` from a boundary (h = kernel / 2):
    1 without taper, else a Gaussian of the distance to the boundary, sigma = taper * h."""
    h = kernel // 2
    u = np.arange(-h, h) + 0.5  # the boundary lies between rows -1 and 0
    if taper <= 0:
        return np.ones(2 * h)
    return np.exp(-0.5 * (u / (taper * h)) ** 2)


def checkerboard_score(sim: np.ndarray, kernel: int, taper: float = 0.0) -> np.ndarray:
    """Boundary score of every row t of a ``(T, T)`` similarity matrix: the weighted mean
    similarity within the rows before t and within the rows from t (``kernel / 2`` each), minus
    twice the mean across them. With the cosine TSM this is the squared distance between the
    weighted means of the unit rows either side, so it is >= 0 and 0 inside a constant segment.
    Rows outside the matrix are left out of the means (not padded with zeros, which would make
    the edges look like boundaries); row 0 scores 0.

    Vectorised: the ``(kernel, kernel)`` windows on the diagonal are read as one strided view of
    the NaN-padded matrix, O(T * kernel^2) work and memory beyond the matrix itself."""
    T = sim.shape[0]
    h = kernel // 2
    pad = np.pad(np.asarray(sim, dtype=np.float64), h, constant_values=np.nan)
    win = np.lib.stride_tricks.sliding_window_view(pad, (2 * h, 2 * h))
    t = np.arange(T)
    band = win[t, t]  # (T, 2h, 2h): band[t, i, j] = sim[t - h + i, t - h + j] (NaN outside)
    w = kernel_weights(2 * h, taper)
    ww = np.where(np.isnan(band), 0.0, w[:, None] * w[None, :])
    vals = np.nan_to_num(band)
    before, after = slice(0, h), slice(h, 2 * h)

    def block_mean(a, b):
        num = (ww[:, a, b] * vals[:, a, b]).sum((1, 2))
        den = ww[:, a, b].sum((1, 2))
        return num / np.maximum(den, 1e-12), den > 0

    within_b, ok_b = block_mean(before, before)
    within_a, ok_a = block_mean(after, after)
    across, _ = block_mean(before, after)
    score = np.where(ok_b & ok_a, within_b + within_a - 2 * across, 0.0)
    return np.maximum(score, 0.0)  # rounding can leave -1e-16 where the sides are equal


def recursive_split(score: np.ndarray, min_length: int, threshold: float) -> np.ndarray:
    """Boundary rows from splitting ``[0, T)`` at its strongest ``score`` and each part again,
    while both parts of a split last at least ``min_length`` rows and the peak reaches
    ``threshold``. An explicit stack instead of recursion: no depth limit on long instances."""
    T = len(score)
    out, todo = [], [(0, T)]
    while todo:
        a, b = todo.pop()
        lo, hi = a + min_length, b - min_length  # candidate starts of the second part
        if hi < lo:
            continue
        t = lo + int(np.argmax(score[lo:hi + 1]))
        if score[t] < threshold or score[t] <= 0:
            continue
        out.append(t)
        todo += [(a, t), (t, b)]
    return np.array(sorted(out), dtype=np.int64)


@register
class TSMParser(Parser):
    name = "tsm"
    supervision = "none"
    DEFAULTS = {
        "kernel": 16,        # checkerboard side in rows (even): kernel/2 rows either side of a boundary
        "taper": 0.5,        # Gaussian taper of the kernel, sigma = taper * kernel/2; 0 = a flat kernel
        "saliency": 1.0,     # a split's peak must reach mean + saliency * std of the instance's scores;
                             # "auto" (with --select-on dev): chosen there among TUNABLE
        "min_length": 4,     # rows: no part of a split is shorter
    }
    TUNABLE = {"saliency": (1.0, 0.0, 0.5, 1.5, 2.0, 3.0)}

    def __init__(self, **config):
        super().__init__(**config)
        k, m = self.config["kernel"], self.config["min_length"]
        if not isinstance(k, int) or k < 2 or k % 2:
            raise TaposError(f"tsm: kernel must be an even number of rows >= 2, not {k!r}")
        if not isinstance(m, int) or m < 1:
            raise TaposError(f"tsm: min_length must be a whole number of rows >= 1, not {m!r}")
        if not isinstance(self.config["taper"], (int, float)) or self.config["taper"] < 0:
            raise TaposError(f"tsm: taper must be a number >= 0, not {self.config['taper']!r}")

    def fit(self, train, val=None, opts=None) -> list:
        opts = opts or FitOptions()
        return fit_once(self, train, val, opts, lambda: self.prepare(train, opts))

    def score(self, x: np.ndarray) -> np.ndarray:
        """Each row's boundary score for normalized rows ``x (T, D)`` (one T x T matrix in memory)."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # one instance's matrices are small: BLAS threads only contend
            sim = self_similarity(x)
        return checkerboard_score(sim, int(self.config["kernel"]), float(self.config["taper"]))

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        s = self.score(x)
        inner = s[1:]  # row 0 cannot start a sub-action
        thr = inner.mean() + float(self.option("saliency")) * inner.std()
        return recursive_split(s, int(self.config["min_length"]), thr)
