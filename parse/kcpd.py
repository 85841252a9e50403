"""Kernel change-point detection with ruptures (KCPD, label-free): ``ruptures.KernelCPD`` on the
standardised rows of each instance, the segmentation minimising the summed within-segment kernel
cost plus a penalty per change point, or the best one with a given number of change points. No
training (``fit`` records the standardisation statistics).

The penalty's label-free rule: ``penalty_scale * log(T) * cost(0, T) / T``, a BIC-like ``log(T)``
per change point in units of the instance's own spread (``cost(0, T) / T`` is the mean kernel
distance of a row to the instance's mean: the variance, for the linear kernel). It is invariant to
the features' scale and length, and a true change of a segment of L rows lowers the cost by about L
times the spread, far above that penalty, while splitting noise lowers it by about one spread."""
from __future__ import annotations

import numpy as np

from tapos.data.errors import TaposError

from .base import FitOptions, Parser, fit_once
from .registry import register

KERNELS = ("rbf", "cosine", "linear")


def compact(x: np.ndarray) -> np.ndarray:
    """``x`` in coordinates of its own row space: ``(T, T)`` rows with the same inner products
    (so the same rbf, cosine and linear kernels, up to rounding) when ``D > T``. ruptures evaluates
    the kernel on the fly in its search, so 300 rows of 2,048-d cost about 7 times as much as the
    same rows in 300-d. The Cholesky factor of the Gram matrix: fast where a QR or an SVD of the
    rows is slow on a busy machine; a singular Gram matrix (repeated rows) keeps ``x`` as it is."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] <= x.shape[0]:
        return x
    from scipy.linalg import LinAlgError, cholesky
    from threadpoolctl import threadpool_limits

    # one BLAS thread: matrices this small gain nothing from more, and lose much on a busy machine
    with threadpool_limits(1):
        try:
            return cholesky(x @ x.T, lower=True, check_finite=False)
        except LinAlgError:
            return x


@register
class KCPDParser(Parser):
    name = "kcpd"
    supervision = "none"
    DEFAULTS = {
        "kernel": "rbf",        # one of rbf (gamma: ruptures' median heuristic), cosine, linear
        "min_size": 4,          # rows: the shortest segment
        "penalty_scale": 1.0,   # penalty per change point: penalty_scale * log(T) * cost(0, T) / T;
                                # "auto" (with --select-on dev): chosen there among TUNABLE
        "n_bkps": None,         # a fixed number of boundaries per instance instead of the penalty
                                # (fewer where the instance is too short)
    }
    TUNABLE = {"penalty_scale": (1.0, 0.25, 0.5, 2.0, 4.0, 8.0)}

    def __init__(self, **config):
        super().__init__(**config)
        c = self.config
        if c["kernel"] not in KERNELS:
            raise TaposError(f"kcpd: kernel must be one of {', '.join(KERNELS)}, not {c['kernel']!r}")
        if not isinstance(c["min_size"], int) or c["min_size"] < 1:
            raise TaposError(f"kcpd: min_size must be a whole number of rows >= 1, not {c['min_size']!r}")
        if c["penalty_scale"] != "auto" and (not isinstance(c["penalty_scale"], (int, float))
                                             or c["penalty_scale"] <= 0):
            raise TaposError(f"kcpd: penalty_scale must be a number > 0 or \"auto\", not {c['penalty_scale']!r}")
        if c["n_bkps"] is not None and (not isinstance(c["n_bkps"], int) or c["n_bkps"] < 0):
            raise TaposError(f"kcpd: n_bkps must be null or a whole number >= 0, not {c['n_bkps']!r}")

    def fit(self, train, val=None, opts=None) -> list:
        opts = opts or FitOptions()
        return fit_once(self, train, val, opts, lambda: self.prepare(train, opts))

    def spread(self, x: np.ndarray, algo) -> float:
        """``cost(0, T) / T``: the mean kernel distance of a row to the instance's mean. ruptures'
        Python cost objects serve rbf and linear; its cosine cost holds cosine *distances* (its
        C search uses the cosine kernel), so that one is computed here: 1 - |mean unit row|^2."""
        if self.config["kernel"] == "cosine":
            unit = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
            return float(1.0 - np.square(unit.mean(0)).sum())
        return float(algo.cost.error(0, len(x)) / len(x))

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        import ruptures

        T = len(x)
        min_size = int(self.config["min_size"])
        most = T // min_size - 1  # change points that fit with every segment >= min_size
        n_bkps = self.config["n_bkps"]
        if most < 1 or n_bkps == 0:
            return np.zeros(0, dtype=np.int64)
        algo = ruptures.KernelCPD(kernel=self.config["kernel"], min_size=min_size).fit(compact(x))
        if n_bkps is not None:
            ends = algo.predict(n_bkps=min(int(n_bkps), most))
        else:
            spread = self.spread(x, algo)
            if spread <= 0:  # constant rows: nothing changes
                return np.zeros(0, dtype=np.int64)
            ends = algo.predict(pen=float(self.option("penalty_scale")) * np.log(T) * spread)
        return np.array(ends[:-1], dtype=np.int64)  # ruptures ends each segment; the last end is T
