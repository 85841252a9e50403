"""Where a Temporal Segment Network takes its snippets: even segments, or sub-actions.

Every sampler returns 0-based start indices, one per snippet, in time order; a snippet of
``new_length`` frames starting at ``i`` reads ``i, i+1, ...`` (the reader repeats the last frame at
the end of the video). Train mode draws positions with ``rng`` (a ``numpy.random.Generator``);
test mode is deterministic.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def uniform_indices(num_frames: int, num_segments: int, new_length: int = 1, train: bool = False,
                    rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """TSN's even segments, exactly as tsn-pytorch and mmaction2 ``SampleFrames`` sample them.

    Inputs: ``num_frames`` of the video, ``num_segments`` K, snippet length L (1 for RGB, 5 for
    stacked flow). Output: K indices.

    - test: ``avg = (n - L + 1) / K``; index k = ``int(avg / 2 + avg * k)`` (all 0 if n < L);
    - train: ``avg = (n - L + 1) // K``; if ``avg > 0``, ``k * avg + randint(avg)``; else if
      ``n > K``, K sorted random indices in ``[0, n - L + 1)``; else all 0.
    """
    n, k, length = int(num_frames), int(num_segments), int(new_length)
    if k < 1 or length < 1:
        raise ValueError("num_segments and new_length must be >= 1")
    span = n - length + 1
    if not train:
        if span <= 0:
            return np.zeros(k, dtype=np.int64)
        avg = span / float(k)
        return np.array([int(avg / 2.0 + avg * x) for x in range(k)], dtype=np.int64)
    rng = rng if rng is not None else np.random.default_rng()
    avg = span // k
    if avg > 0:
        return np.arange(k, dtype=np.int64) * avg + rng.integers(avg, size=k)
    if n > k:
        return np.sort(rng.integers(max(span, 1), size=k)).astype(np.int64)
    return np.zeros(k, dtype=np.int64)


def segments_from_boundaries(num_frames: int, boundaries: Sequence[int]) -> list:
    """Internal boundaries (frames where a sub-action starts) -> ``[(start, end), ...]`` covering
    ``[0, num_frames)``; boundaries outside ``(0, num_frames)`` and repeats are dropped."""
    cuts = sorted({int(b) for b in boundaries if 0 < int(b) < num_frames})
    edges = [0, *cuts, int(num_frames)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _merge_to(segments: list, k: int) -> list:
    """More sub-actions than snippets: merge the shortest sub-action into its shorter neighbour
    (the earlier one on ties) until ``k`` remain."""
    segs = list(segments)
    while len(segs) > k:
        lengths = [b - a for a, b in segs]
        j = int(np.argmin(lengths))  # first shortest
        if j == 0:
            other = 1
        elif j == len(segs) - 1:
            other = j - 1
        else:
            other = j - 1 if lengths[j - 1] <= lengths[j + 1] else j + 1
        lo, hi = min(j, other), max(j, other)
        segs[lo:hi + 1] = [(segs[lo][0], segs[hi][1])]
    return segs


def _allocate(lengths: Sequence[int], k: int) -> list:
    """``k`` snippets over segments in proportion to their lengths, at least one each
    (largest remainder; ties go to the longer segment, then the earlier one)."""
    s = len(lengths)
    counts = [1] * s
    extra = k - s
    if extra <= 0:
        return counts
    total = float(sum(lengths))
    quotas = [extra * length / total for length in lengths]
    floors = [int(q) for q in quotas]
    counts = [c + f for c, f in zip(counts, floors)]
    left = extra - sum(floors)
    order = sorted(range(s), key=lambda j: (-(quotas[j] - floors[j]), -lengths[j], j))
    for j in order[:left]:
        counts[j] += 1
    return counts


def aligned_indices(num_frames: int, boundaries: Sequence[int], num_segments: int, new_length: int = 1,
                    train: bool = False, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Snippets that follow the sub-actions (the paper's "aligned" TSN, and "parsed" with
    predicted boundaries).

    Inputs: ``num_frames``, the internal ``boundaries`` (frames where a sub-action starts),
    ``num_segments`` K, snippet length L. Output: K indices in time order. The rule (the paper
    leaves it open):

    - K equal to the number of sub-actions S: one snippet per sub-action;
    - S < K: each sub-action gets one snippet, the remaining K - S go to sub-actions in proportion
      to their lengths (largest remainder); a sub-action with m snippets is cut into m equal parts;
    - S > K: the shortest sub-action is merged into its shorter neighbour until K remain;
    - no boundary: the whole clip is one sub-action (= uniform sampling).

    Within a part, a snippet sits at its centre in test mode and at a random position in train
    mode, as TSN samples a segment; snippets never start after ``num_frames - L``.
    """
    n, k, length = int(num_frames), int(num_segments), int(new_length)
    if k < 1 or length < 1:
        raise ValueError("num_segments and new_length must be >= 1")
    if n <= 0:
        return np.zeros(k, dtype=np.int64)
    rng = rng if rng is not None else (np.random.default_rng() if train else None)
    segs = _merge_to(segments_from_boundaries(n, boundaries), k)
    counts = _allocate([b - a for a, b in segs], k)
    last = max(n - length, 0)
    out = []
    for (a, b), m in zip(segs, counts):
        edges = np.linspace(a, b, m + 1)
        for lo, hi in zip(edges[:-1], edges[1:]):
            if train:
                # a random start in [lo, hi) at frame resolution; a part shorter than a frame keeps lo
                start = int(lo) + (int(rng.integers(max(int(hi) - int(lo), 1))) if int(hi) > int(lo) else 0)
            else:
                start = int((lo + hi) / 2.0)
            out.append(min(start, last))
    return np.asarray(out, dtype=np.int64)
