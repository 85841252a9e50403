"""The one boundary-matching routine every protocol uses.

Greedy, not optimal: ground-truth boundaries are taken in stored order; each is matched to the
nearest still-unmatched prediction (the first one on ties) when it lies within the tolerance, and
that prediction is then used up. The published GEBD and TAPOS numbers depend on this order.

Many (ground truth, predictions) pairs and all tolerances are matched at once: the state is one
"used" mask per pair and tolerance, and the loop runs over ground-truth positions only.
"""
from __future__ import annotations

import numpy as np

_CHUNK_ELEMENTS = 1 << 22  # rows x tolerances x predictions per step, bounds memory


def greedy_true_positives_batch(gts, preds, tolerances) -> np.ndarray:
    """Matched ground-truth boundaries for each pair and tolerance.

    ``gts[r]`` (stored order) and ``preds[r]`` are 1-D float64 arrays; ``tolerances`` is
    ``(R, K)``; a match needs ``|gt - pred| <= tolerance``. Returns an int64 array ``(R, K)``.
    """
    tol = np.asarray(tolerances, dtype=np.float64)
    R, K = tol.shape
    tp = np.zeros((R, K), dtype=np.int64)
    n_pred = np.array([len(p) for p in preds], dtype=np.int64)
    # rows of similar prediction counts together keep the padding small
    order = np.argsort(n_pred, kind="stable")
    start = 0
    while start < R:
        stop = start + 1
        while stop < R and (stop - start + 1) * K * max(int(n_pred[order[stop]]), 1) <= _CHUNK_ELEMENTS:
            stop += 1
        rows = order[start:stop]
        tp[rows] = _match_rows([gts[r] for r in rows], [preds[r] for r in rows], tol[rows])
        start = stop
    return tp


def _match_rows(gts, preds, tol) -> np.ndarray:
    R, K = tol.shape
    G = max((len(g) for g in gts), default=0)
    P = max((len(p) for p in preds), default=0)
    tp = np.zeros((R, K), dtype=np.int64)
    if G == 0 or P == 0:
        return tp
    gt = np.full((R, G), np.nan)
    pr = np.full((R, P), np.inf)  # padding: infinitely far, never the first minimum
    for r, (g, p) in enumerate(zip(gts, preds)):
        gt[r, : len(g)] = g
        pr[r, : len(p)] = p
    dist = np.abs(gt[:, :, None] - pr[:, None, :])  # (R, G, P); nan for padded ground truth
    used = np.zeros((R, K, P), dtype=bool)
    ri = np.arange(R)[:, None]
    ki = np.arange(K)[None, :]
    for i in range(G):
        d = np.where(used, np.inf, dist[:, i, None, :])  # (R, K, P)
        j = d.argmin(axis=2)  # first minimum on ties, as argmin over the remaining predictions
        hit = d[ri, ki, j] <= tol  # nan (padded gt) and inf (nothing left) never hit
        used[ri, ki, j] |= hit
        tp += hit
    return tp


def greedy_true_positives(gt, pred, tolerances) -> np.ndarray:
    """Matched ground-truth boundaries of one pair for each tolerance (1-D ``tolerances``)."""
    tol = np.asarray(tolerances, dtype=np.float64)[None, :]
    return greedy_true_positives_batch([np.asarray(gt, dtype=np.float64)], [np.asarray(pred, dtype=np.float64)],
                                       tol)[0]
