"""Recursive parsing of the temporal self-similarity matrix (TSM, label-free, after UBoCo): the
cosine similarity of every pair of standardised rows forms a T x T matrix; a checkerboard kernel
slid along its diagonal scores each row as a boundary (similar within the blocks before and after
it, dissimilar across); a segment is split at its strongest score and each half parsed again,
until a half would be shorter than ``min_length`` rows or the peak is not salient relative to the
instance's scores. No training (``fit`` records the standardisation statistics).

The kernel and ``min_length`` are in seconds by default (see :mod:`tapos.parse.lengths`): a
16-row kernel is a seventh of a synthetic instance but 0.5 s of a TAPOS one at 30 fps, where it
scored camera moves and noise as boundaries (10 per instance against 2.3 true). A long kernel is scored from the rows (:func:`checkerboard_from_rows`: the two sides'
weighted mean unit rows, O(T * D) memory), not from a T x T matrix, when its band would be large."""
from __future__ import annotations

import numpy as np

from tapos.data.errors import TaposError

from .base import FitOptions, Parser, fit_once
from .lengths import check_length, length_rows, length_value
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
    return band_score(win[t, t], kernel, taper)  # band[t, i, j] = sim[t - h + i, t - h + j] (NaN outside)


def band_score(band: np.ndarray, kernel: int, taper: float = 0.0) -> np.ndarray:
    """:func:`checkerboard_score` from the band ``(T, 2h, 2h)`` of the similarity matrix that it
    reads, ``band[t, i, j] = sim[t - h + i, t - h + j]`` (NaN outside the matrix)."""
    h = kernel // 2
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


# Instances longer than this many rows are never scored from their whole T x T similarity matrix:
# 25,050 rows (TAPOS's longest train instance at a row per frame) would be a 5 GB matrix and as
# much again padded. TSMParser.score reads them from the rows (checkerboard_from_rows, whose
# memory does not grow with a kernel that is a fraction of the instance); similarity_band gives
# the band of the matrix that the kernel reads, for a fixed kernel in rows.
FULL_MATRIX_ROWS = 4096


def similarity_band(x: np.ndarray, kernel: int) -> np.ndarray:
    """The band ``(T, 2h, 2h)`` of the cosine self-similarity of the rows of ``x`` that
    :func:`checkerboard_score` reads (h = kernel / 2): ``band[t, i, j]`` is the similarity of rows
    ``t - h + i`` and ``t - h + j``, NaN where one is outside. O(T * kernel * D) time, O(T * kernel^2)
    memory besides ``x``: the same values as the matrix (up to rounding), without it."""
    x = np.asarray(x, dtype=np.float64)
    unit = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    T, h = len(unit), kernel // 2
    near = np.full((T, 2 * h), np.nan)  # near[r, o] = sim[r, r + o]
    for o in range(min(2 * h, T)):
        near[:T - o, o] = np.einsum("td,td->t", unit[:T - o], unit[o:])
    off = np.arange(2 * h) - h
    p = np.arange(T)[:, None, None] + off[None, :, None]  # rows of band[t, i, :] and band[t, :, j]
    q = np.arange(T)[:, None, None] + off[None, None, :]
    lo = np.minimum(p, q)
    inside = (lo >= 0) & (np.maximum(p, q) < T)
    return np.where(inside, near[np.clip(lo, 0, T - 1), np.abs(p - q)], np.nan)


# Above this many cells (T * kernel^2) of the kernel's band, the score is computed from the rows
# (checkerboard_from_rows) rather than from the similarity matrix: a kernel of a fifth of a
# 3,000-row instance would read 1e9 cells.
BAND_CELLS = 2_000_000
# Work (rows x kernel/2 x feature width) up to which the side means are summed offset by offset;
# beyond it they are FFT convolutions, a slice of columns at a time.
DIRECT_WORK = 50_000_000
COLUMNS = 256


def checkerboard_from_rows(x: np.ndarray, kernel: int, taper: float = 0.0) -> np.ndarray:
    """:func:`checkerboard_score` of the cosine TSM of ``x (T, D)`` without the matrix. A block
    mean of the TSM is an inner product of weighted means of unit rows (the mean of ``w_i w_j
    u_i . u_j`` over a block is ``m_b . m_a``), so the score is ``|m_before(t) - m_after(t)|^2``
    with ``m`` the weighted mean unit row of the ``kernel / 2`` rows either side of t (rows
    outside the instance left out, as in the matrix). Equal to the matrix form up to rounding;
    O(T * D) memory whatever the kernel."""
    from scipy.signal import fftconvolve

    x = np.asarray(x, dtype=np.float64)
    unit = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    T, D = unit.shape
    h = kernel // 2
    w = kernel_weights(2 * h, taper)
    wb, wa = w[:h], w[h:]  # offsets -h..-1 and 0..h-1 from t
    direct = T * h * D <= DIRECT_WORK

    def sides(a):  # weighted sums of the h rows before t and of the h rows from t, for every t
        P = np.zeros((T + 2 * h,) + a.shape[1:])
        P[h:h + T] = a  # P[t + h] = a[t]; zeros outside the instance
        if direct:
            before = sum(wb[i] * P[i:i + T] for i in range(h))
            after = sum(wa[j] * P[h + j:h + j + T] for j in range(h))
            return before, after
        shape = (-1,) + (1,) * (a.ndim - 1)
        before = fftconvolve(P, wb[::-1].reshape(shape), mode="valid", axes=0)[:T]
        after = fftconvolve(P, wa[::-1].reshape(shape), mode="valid", axes=0)[h:h + T]
        return before, after

    den_b, den_a = sides(np.ones(T))
    ok = (den_b > 1e-9) & (den_a > 1e-9)  # row 0 has no row before it
    score = np.zeros(T)
    for c in range(0, D, COLUMNS if not direct else D):
        num_b, num_a = sides(unit[:, c:c + (COLUMNS if not direct else D)])
        diff = num_b / np.maximum(den_b, 1e-12)[:, None] - num_a / np.maximum(den_a, 1e-12)[:, None]
        score += np.square(diff).sum(1)
    score = np.where(ok, score, 0.0)
    score[score < 1e-12] = 0.0  # rounding where the sides are equal (scores lie in [0, 4])
    return score


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
        "kernel": "2s",      # checkerboard side (kernel/2 either side of a boundary; rounded to an even
                             # count of rows >= 2): seconds, a fraction 0 < f < 1 of the instance's rows
                             # or an even number of rows (tapos.parse.lengths). With min_length "1s", on
                             # TAPOS's structure (train split): 0.9x the true count, correlation 0.60
                             # (fractions 0.2 / 0.07: 1.2x, correlation 0.00; 16 rows: 4.5x)
        "taper": 0.5,        # Gaussian taper of the kernel, sigma = taper * kernel/2; 0 = a flat kernel
        "saliency": 1.0,     # a split's peak must reach mean + saliency * std of the instance's scores;
                             # "auto" (with --select-on dev): chosen there among TUNABLE
        "min_length": "1s",  # no part of a split is shorter: seconds, a fraction of the instance's rows
                             # or a whole number of rows (formerly 4)
    }
    TUNABLE = {"saliency": (1.0, 0.0, 0.5, 1.5, 2.0, 3.0)}

    def __init__(self, **config):
        super().__init__(**config)
        check_length(self.name, "kernel", self.config["kernel"], least=2, even=True)
        check_length(self.name, "min_length", self.config["min_length"])
        if not isinstance(self.config["taper"], (int, float)) or self.config["taper"] < 0:
            raise TaposError(f"tsm: taper must be a number >= 0, not {self.config['taper']!r}")

    def fit(self, train, val=None, opts=None) -> list:
        opts = opts or FitOptions()
        return fit_once(self, train, val, opts, lambda: self.prepare(train, opts))

    def kernel_rows(self, rows: int) -> int:
        """The checkerboard side in rows for an instance of ``rows`` rows (even, >= 2)."""
        return max(2, 2 * int(round(length_value(self.config["kernel"], rows, self.rate) / 2)))  # even rows stay

    def score(self, x: np.ndarray) -> np.ndarray:
        """Each row's boundary score for normalized rows ``x (T, D)``: from one T x T matrix in memory
        when its band is small, from the rows (:func:`checkerboard_from_rows`, no matrix) for
        instances over ``FULL_MATRIX_ROWS`` rows or a band over ``BAND_CELLS`` cells."""
        from threadpoolctl import threadpool_limits

        T = len(x)
        kernel, taper = self.kernel_rows(T), float(self.config["taper"])
        with threadpool_limits(1):  # one instance's matrices are small: BLAS threads only contend
            if T > FULL_MATRIX_ROWS or T * kernel * kernel > BAND_CELLS:
                return checkerboard_from_rows(x, kernel, taper)
            sim = self_similarity(x)
        return checkerboard_score(sim, kernel, taper)

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        s = self.score(x)
        inner = s[1:]  # row 0 cannot start a sub-action
        thr = inner.mean() + float(self.option("saliency")) * inner.std()
        return recursive_split(s, length_rows(self.config["min_length"], len(x), rate=self.rate), thr)
