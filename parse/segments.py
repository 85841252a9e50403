"""From per-row outputs to boundary rows: label changes, smoothing, peak picking (rows to frames:
:mod:`tapos.data.clock`)."""
from __future__ import annotations

import zlib

import numpy as np


def change_points(labels) -> np.ndarray:
    """Rows ``t`` where ``labels[t] != labels[t - 1]``: a new sub-action starts at ``t``."""
    labels = np.asarray(labels)
    if labels.size < 2:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(labels[1:] != labels[:-1]).astype(np.int64) + 1


def merge_short_segments(labels, min_length: int) -> np.ndarray:
    """Relabel runs shorter than ``min_length`` rows with a neighbouring run's label.

    The shortest run is merged first, into the longer of its neighbours, until every run is long
    enough (or one run is left). ``min_length <= 1`` returns the labels unchanged.

    No side is favoured, so smoothing moves boundaries neither late nor early on average:

    - which of equally short runs is merged first is drawn at random, from a generator seeded
      with where the runs are (the same labels always give the same result, whatever their
      values), so the left one goes first as often as the right one (the leftmost first grew
      each left neighbour before the next short run was judged, so that run joined it too:
      smoothed boundaries were on average a fifth to a third of a row late);
    - a run between two equally long neighbours is split between them at its middle (an odd
      middle row joins the left neighbour when its index is even, the right one when it is odd).
    """
    labels = np.asarray(labels).copy()
    if min_length <= 1 or labels.size == 0:
        return labels
    seed = zlib.crc32(np.append(change_points(labels), labels.size).astype("<i8").tobytes())
    keys = np.random.default_rng(seed).random(labels.size)  # a run's key: its first row's
    while True:
        starts = np.concatenate([[0], change_points(labels)])
        ends = np.concatenate([starts[1:], [labels.size]])
        lengths = ends - starts
        if len(lengths) == 1 or lengths.min() >= min_length:
            return labels
        shortest = np.flatnonzero(lengths == lengths.min())
        i = int(shortest[np.argmin(keys[starts[shortest]])])
        s, e = int(starts[i]), int(ends[i])
        left = lengths[i - 1] if i > 0 else -1
        right = lengths[i + 1] if i + 1 < len(lengths) else -1
        if left > right:
            labels[s:e] = labels[s - 1]
        elif right > left:
            labels[s:e] = labels[e]
        else:
            mid = s + (e - s) // 2
            if (e - s) % 2 and mid % 2 == 0:  # the odd middle row, by its index
                mid += 1
            before, after = labels[s - 1], labels[e]
            labels[s:mid] = before
            labels[mid:e] = after


def window_means(x: np.ndarray, window: int):
    """``(before, after)``: for every row t the mean of rows ``t-window..t-1`` and of ``t..t+window-1``
    (fewer at the ends; row 0's ``before`` is zeros). One cumulative sum, O(T * D)."""
    T = len(x)
    c = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0, dtype=np.float64)])
    t = np.arange(T)
    lo, hi = np.maximum(t - window, 0), np.minimum(t + window, T)
    before = (c[t] - c[lo]) / np.maximum(t - lo, 1)[:, None]
    after = (c[hi] - c[t]) / np.maximum(hi - t, 1)[:, None]
    return before, after


def pick_peaks(score, threshold: float, min_distance: int = 1) -> np.ndarray:
    """Local maxima of ``score`` that reach ``threshold``, at least ``min_distance`` rows apart
    (the higher peak wins)."""
    s = np.asarray(score, dtype=np.float64)
    if s.size < 3:
        return np.zeros(0, dtype=np.int64)
    left = np.concatenate([[-np.inf], s[:-1]])
    right = np.concatenate([s[1:], [-np.inf]])
    cand = np.flatnonzero((s >= left) & (s > right) & (s >= threshold))
    keep = []
    for i in cand[np.argsort(-s[cand], kind="stable")]:
        if all(abs(i - j) >= min_distance for j in keep):
            keep.append(int(i))
    return np.array(sorted(keep), dtype=np.int64)


def top_peaks(score, k: int, min_distance: int = 1) -> np.ndarray:
    """The ``k`` highest local maxima of ``score``, at least ``min_distance`` rows apart (fewer when
    the instance has fewer), sorted by row: a readout whose count comes from elsewhere
    (:mod:`tapos.parse.count`)."""
    peaks = pick_peaks(score, -np.inf, min_distance)
    peaks = peaks[peaks > 0]  # row 0 starts the instance: no boundary
    if k <= 0 or peaks.size == 0:
        return np.zeros(0, dtype=np.int64)
    s = np.asarray(score, dtype=np.float64)
    keep = peaks[np.argsort(-s[peaks], kind="stable")[:k]]
    return np.sort(keep)


def runs_above(score, threshold: float) -> np.ndarray:
    """One boundary per maximal run of rows with ``score >= threshold``: the run's highest row."""
    s = np.asarray(score, dtype=np.float64)
    above = s >= threshold
    out = []
    t = 0
    while t < s.size:
        if above[t]:
            u = t
            while u < s.size and above[u]:
                u += 1
            out.append(t + int(np.argmax(s[t:u])))
            t = u
        else:
            t += 1
    return np.array(out, dtype=np.int64)


def spans(bounds, end) -> list:
    """``[(start, stop), ...]``: the segments that ``bounds`` cut ``[0, end)`` into (bounds outside
    ``(0, end)`` and repeats are ignored)."""
    edges = [0, *sorted({b for b in bounds if 0 < b < end}), end]
    return list(zip(edges[:-1], edges[1:]))


def segment_labels(responses: np.ndarray, bounds) -> np.ndarray:
    """Each row labelled with the strongest mean response ``(T, m)`` of its segment (the segments
    that ``bounds`` cut it into): labels that change only at those boundaries, for methods whose
    boundaries do not come from a row's own argmax."""
    labels = np.empty(len(responses), dtype=np.int64)
    for s, e in spans(list(bounds), len(responses)):
        labels[s:e] = int(responses[s:e].mean(0).argmax())
    return labels
