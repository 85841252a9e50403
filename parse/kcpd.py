"""Kernel change-point detection with ruptures (KCPD, label-free): ``ruptures.KernelCPD`` on the
standardised rows of each instance, the segmentation minimising the summed within-segment kernel
cost plus a penalty per change point, or the best one with a given number of change points. No
training (``fit`` records the standardisation statistics).

The penalty's label-free rule reads the instance alone. ruptures' dynamic programme gives the best
segmentation with K = 0..``max_bkps`` change points and its cost C(K); the instance gets the K
that minimises ``C(K) + pen * K`` with

    pen = penalty_scale * min(penalty_fraction * C(0) * span / T, noise_factor * g)

- ``penalty_fraction * C(0) * span / T``: a change point must explain that share of the spread of
  ``span`` of the instance's rows (C(0), the kernel cost of one segment, is a sum over its T
  rows). With ``span`` in seconds (default 10 s) the count grows with the duration, as TAPOS's
  does; with ``span=null`` the share is of the whole instance, which gives every instance about
  the same count. Kernel costs are sums over rows, so the share of a span is the same whatever
  the rows' rate: a cache at stride 3 gives the boundaries of stride 1 in time. (The former rule, ``log(T) *
  C(0) / T``, a BIC-like penalty per row, fell with the number of rows: 3x the boundaries at
  stride 1 as at stride 3 on TAPOS's structure.)
- ``noise_factor * g``, with g what one more change point gains once the path only splits noise
  (the mean slope of C(K) over the last half of the path, K = max_bkps/2..max_bkps): a cap that
  keeps the rule from parsing nothing where the features are noisy, whose spread then is mostly
  noise that no boundary explains (a share of C(0) alone then asks too much: 0.4 of the true count
  on a noisy synthetic set, 0.6 with the cap); never below a tenth of the share.

Instances longer than ``max_rows`` rows are first averaged into ``max_rows`` equal bins (their
boundaries are mapped back to rows): the search and the rbf Gram matrix cost the square of the
rows, and TAPOS has instances of 25,050 frames. Rows wider than the instance is long are replaced
by the Cholesky factor of their Gram matrix (same kernel values, T columns instead of D), which
makes ruptures' search several times faster on 2,048-d features."""
from __future__ import annotations

import numpy as np

from tapos.data.errors import TaposError

from .base import FitOptions, Parser, fit_once
from .lengths import check_length, length_rows
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


def pool_rows(x: np.ndarray, most) -> tuple:
    """``(rows, edges)``: ``x`` averaged into ``most`` bins of (nearly) equal length when it is
    longer, else as it is; row j of the result starts at row ``edges[j]`` of ``x``."""
    T = len(x)
    if most is None or T <= most:
        return x, np.arange(T + 1)
    edges = np.round(np.linspace(0, T, int(most) + 1)).astype(np.int64)
    c = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0, dtype=np.float64)])
    return (c[edges[1:]] - c[edges[:-1]]) / np.diff(edges)[:, None], edges


def noise_gain(costs: np.ndarray) -> float:
    """What one more change point gains at the end of the path ``C(0..K)``: minus the least-squares
    slope of C over K = K/2..K (0 when the path is shorter than 4 change points)."""
    K = len(costs) - 1
    if K < 4:
        return 0.0
    ks = np.arange(K // 2, K + 1)
    return max(-float(np.polyfit(ks, costs[ks], 1)[0]), 0.0)


@register
class KCPDParser(Parser):
    name = "kcpd"
    supervision = "none"
    DEFAULTS = {
        "kernel": "rbf",          # one of rbf (gamma: ruptures' median heuristic), cosine, linear
        "min_size": "0.4s",       # the shortest segment: seconds, a fraction 0 < f < 1 of the instance's
                                  # rows, or rows (of the binned rows past max_rows). Formerly 4 rows:
                                  # the same at stride 3, but at stride 1 a shorter path whose noise
                                  # cap parsed 2.2x more than at stride 3
        "penalty_scale": 1.0,     # scales the penalty per change point below; "auto" (with --select-on
                                  # dev): chosen there among TUNABLE
        "penalty_fraction": 0.06,  # a change point must explain this share of the spread of `span`
                                  # of the instance's rows (the same at any stride)
        "noise_factor": 5.0,      # ... or this many times what a change point gains on noise (the tail
                                  # of the instance's own cost path), whichever is smaller: keeps noisy
                                  # features from parsing nothing; null: the share alone
        "span": "10s",            # the penalty's share is of the spread of this much of the instance
                                  # (C(0) * span / T; seconds, a fraction or rows; null: of the whole
                                  # instance). In seconds the count follows the duration, as TAPOS's
                                  # does: 1.1x the true count on its structure, correlation 0.69 (train
                                  # split); of the whole instance 1.35x, correlation 0.06
        "max_bkps": 20,           # the longest path searched (change points per instance at most)
        "max_rows": 512,          # longer instances are averaged into this many bins first (the search
                                  # costs the square of the rows); null: never
        "n_bkps": None,           # a fixed number of boundaries per instance instead of the penalty
                                  # (fewer where the instance is too short)
    }
    TUNABLE = {"penalty_scale": (1.0, 0.25, 0.5, 2.0, 4.0, 8.0)}

    def __init__(self, **config):
        super().__init__(**config)
        c = self.config
        if c["kernel"] not in KERNELS:
            raise TaposError(f"kcpd: kernel must be one of {', '.join(KERNELS)}, not {c['kernel']!r}")
        check_length(self.name, "min_size", c["min_size"])
        if c["span"] is not None:
            check_length(self.name, "span", c["span"])
        if c["penalty_scale"] != "auto" and (not isinstance(c["penalty_scale"], (int, float))
                                             or c["penalty_scale"] <= 0):
            raise TaposError(f"kcpd: penalty_scale must be a number > 0 or \"auto\", not {c['penalty_scale']!r}")
        if not isinstance(c["penalty_fraction"], (int, float)) or not 0 < c["penalty_fraction"] < 1:
            raise TaposError(f"kcpd: penalty_fraction must be a number between 0 and 1, not {c['penalty_fraction']!r}")
        if c["noise_factor"] is not None and (not isinstance(c["noise_factor"], (int, float))
                                              or c["noise_factor"] <= 0):
            raise TaposError(f"kcpd: noise_factor must be null or a number > 0, not {c['noise_factor']!r}")
        for key, least in (("max_bkps", 1), ("max_rows", 2)):
            v = c[key]
            if (v is not None or key == "max_bkps") and (not isinstance(v, int) or isinstance(v, bool) or v < least):
                nullable = "null or " if key == "max_rows" else ""
                raise TaposError(f"kcpd: {key} must be {nullable}a whole number >= {least}, not {v!r}")
        if c["n_bkps"] is not None and (not isinstance(c["n_bkps"], int) or c["n_bkps"] < 0):
            raise TaposError(f"kcpd: n_bkps must be null or a whole number >= 0, not {c['n_bkps']!r}")

    def fit(self, train, val=None, opts=None) -> list:
        opts = opts or FitOptions()
        return fit_once(self, train, val, opts, lambda: self.prepare(train, opts))

    def segment_cost(self, x: np.ndarray, algo):
        """``cost(a, b)``: the kernel cost of rows ``[a, b)`` (the sum of their kernel distances to
        their mean), from prefix sums. ruptures' Python cost serves rbf (its Gram matrix); its
        cosine cost holds cosine *distances* while its C search uses the cosine kernel, so the
        cosine and linear costs are computed here from the (unit) rows."""
        if self.config["kernel"] == "rbf":
            G = algo.cost.gram
            P = np.zeros((len(G) + 1, len(G) + 1))
            P[1:, 1:] = G.cumsum(0).cumsum(1)
            d = np.concatenate([[0.0], np.cumsum(np.diagonal(G))])
            return lambda a, b: (d[b] - d[a]) - (P[b, b] - P[a, b] - P[b, a] + P[a, a]) / (b - a)
        if self.config["kernel"] == "cosine":
            x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
        s1 = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
        s2 = np.concatenate([[0.0], np.cumsum(np.square(x).sum(1))])
        return lambda a, b: (s2[b] - s2[a]) - float(np.square(s1[b] - s1[a]).sum()) / (b - a)

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        import ruptures

        c = self.config
        pooled, edges = pool_rows(np.asarray(x, dtype=np.float64), c["max_rows"])
        T = len(pooled)
        rate = self.rate * T / len(x) if self.rate else None  # rows per second of the pooled rows
        min_size = length_rows(c["min_size"], T, rate=rate)
        most = T // min_size - 1  # change points that fit with every segment >= min_size
        n_bkps = c["n_bkps"]
        if most < 1 or n_bkps == 0:
            return np.zeros(0, dtype=np.int64)
        rows = compact(pooled)
        algo = ruptures.KernelCPD(kernel=c["kernel"], min_size=min_size).fit(rows)
        if n_bkps is not None:
            ends = algo.predict(n_bkps=min(int(n_bkps), most))
        else:
            K = min(int(c["max_bkps"]), most)
            algo.predict(n_bkps=K)  # the dynamic programme keeps the best segmentation for every K
            path = [[T]] + [algo.segmentations_dict[k] for k in range(1, K + 1)]
            cost = self.segment_cost(rows, algo)
            costs = np.array([sum(cost(a, b) for a, b in zip([0, *p[:-1]], p)) for p in path])
            if costs[0] <= 1e-12:  # constant rows: nothing changes
                return np.zeros(0, dtype=np.int64)
            share = float(c["penalty_fraction"]) * costs[0]
            if c["span"] is not None:  # a share of the spread of `span` of rows, not of the instance's
                share *= length_rows(c["span"], T, rate=rate) / T
            pen = share
            if c["noise_factor"] is not None:  # never below a tenth of the share: where the rows hold
                # no noise (steps and nothing else), rounding would decide
                pen = max(min(share, float(c["noise_factor"]) * noise_gain(costs)), 0.1 * share)
            pen *= float(self.option("penalty_scale"))
            ends = path[int(np.argmin(costs + pen * np.arange(K + 1)))]
        return np.array([edges[e] for e in ends[:-1]], dtype=np.int64)  # the last end is T
