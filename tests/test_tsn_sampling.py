"""TSN samplers: uniform (as tsn-pytorch / mmaction2 sample) and aligned with sub-actions."""
import numpy as np
import pytest

from tapos.tsn import aligned_indices, segments_from_boundaries, uniform_indices


@pytest.mark.parametrize("n,k,length,expect", [
    (10, 3, 1, [1, 5, 8]),
    (100, 4, 1, [12, 37, 62, 87]),
    (3, 8, 1, [0, 0, 0, 1, 1, 2, 2, 2]),      # a video shorter than the number of segments
    (1, 3, 1, [0, 0, 0]),
    (20, 3, 5, [2, 8, 13]),                   # flow: 16 possible starts
    (7, 3, 5, [0, 1, 2]),
    (4, 3, 5, [0, 0, 0]),                     # shorter than one flow snippet
    (25, 25, 1, list(range(25))),
])
def test_uniform_test_indices_by_hand(n, k, length, expect):
    assert uniform_indices(n, k, length).tolist() == expect


def tsn_pytorch_test(num_frames, num_segments, new_length):
    """tsn-pytorch's _get_test_indices (1-based there), transcribed loop by loop, minus 1."""
    tick = (num_frames - new_length + 1) / float(num_segments)
    offsets = np.array([int(tick / 2.0 + tick * x) for x in range(num_segments)])
    return offsets + 1 - 1


def mmaction_test(num_frames, num_clips, clip_len):
    avg_interval = (num_frames - clip_len + 1) / float(num_clips)
    if num_frames > clip_len - 1:
        base = np.arange(num_clips) * avg_interval
        return (base + avg_interval / 2.0).astype(np.int32)
    return np.zeros((num_clips,), dtype=np.int32)


def test_uniform_test_indices_equal_both_implementations_everywhere():
    for n in range(1, 120):
        for k in (1, 2, 3, 5, 7, 8, 16, 25):
            for length in (1, 5):
                ours = uniform_indices(n, k, length).tolist()
                assert ours == mmaction_test(n, k, length).tolist(), (n, k, length)
                if n >= length:
                    assert ours == tsn_pytorch_test(n, k, length).tolist(), (n, k, length)


def test_uniform_train_indices_stay_in_their_segments():
    rng = np.random.default_rng(0)
    for n, k, length in [(100, 3, 1), (37, 8, 1), (40, 7, 5), (9, 3, 1)]:
        avg = (n - length + 1) // k
        seen = set()
        for _ in range(200):
            idx = uniform_indices(n, k, length, train=True, rng=rng)
            assert ((idx >= np.arange(k) * avg) & (idx < (np.arange(k) + 1) * avg)).all()
            seen.add(tuple(idx))
        assert len(seen) > 20  # really random
    # fewer frames than segments * 1 but more than k: sorted random draws; else zeros
    idx = uniform_indices(10, 8, 5, train=True, rng=rng)
    assert idx.tolist() == sorted(idx.tolist()) and idx.max() <= 5
    assert uniform_indices(5, 8, 1, train=True, rng=rng).tolist() == [0] * 8
    # the same seed gives the same draws
    a = uniform_indices(100, 3, train=True, rng=np.random.default_rng(7))
    b = uniform_indices(100, 3, train=True, rng=np.random.default_rng(7))
    assert a.tolist() == b.tolist()


def test_segments_from_boundaries():
    assert segments_from_boundaries(100, [60, 30, 30, 0, 100, 130]) == [(0, 30), (30, 60), (60, 100)]
    assert segments_from_boundaries(10, []) == [(0, 10)]


@pytest.mark.parametrize("n,bounds,k,length,expect", [
    (100, [30, 60], 3, 1, [15, 45, 80]),                 # one snippet per sub-action, at its centre
    (100, [30, 60], 5, 1, [7, 22, 45, 70, 90]),          # 2 extra by length: the 40 and the first 30
    (100, [30, 60], 2, 1, [30, 80]),                     # the shortest merges into its shorter neighbour
    (100, [10, 20, 90], 2, 1, [10, 60]),                 # 10|10|70|10 -> 20|70|10 -> 20|80
    (100, [], 4, 1, [12, 37, 62, 87]),                   # no boundary: uniform
    (20, [18], 2, 5, [9, 15]),                           # flow snippets never run past the end
    (6, [1, 2, 3, 4, 5], 3, 1, [1, 3, 5]),              # six 1-frame sub-actions -> three of 2
])
def test_aligned_test_indices_by_hand(n, bounds, k, length, expect):
    assert aligned_indices(n, bounds, k, length).tolist() == expect


def test_aligned_without_boundaries_equals_uniform_in_test_mode():
    for n in range(8, 80, 7):
        for k in (1, 3, 4, 8):
            assert aligned_indices(n, [], k).tolist() == uniform_indices(n, k).tolist()


def test_aligned_train_indices_stay_in_their_parts():
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(300):
        idx = aligned_indices(100, [30, 60], 5, train=True, rng=rng)
        parts = [(0, 15), (15, 30), (30, 60), (60, 80), (80, 100)]
        assert all(lo <= i < hi for i, (lo, hi) in zip(idx, parts)), idx
        seen.add(tuple(idx))
    assert len(seen) > 50
    # more snippets than frames: parts shorter than a frame share frames, in time order
    idx = aligned_indices(3, [1, 2], 8, train=True, rng=rng)
    assert idx.tolist() == sorted(idx.tolist()) and set(idx.tolist()) == {0, 1, 2}
    a = aligned_indices(100, [30, 60], 5, train=True, rng=np.random.default_rng(3))
    assert a.tolist() == aligned_indices(100, [30, 60], 5, train=True, rng=np.random.default_rng(3)).tolist()
