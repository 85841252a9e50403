"""The clock (tapos.data.clock): time <-> rows <-> annotation frames, as properties."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapos.data.clock import (
    boundary_rows,
    edge_frames,
    frame_rate,
    frames_to_seconds,
    grid_frames,
    nearest_grid_frame,
    row_boundary_frames,
    row_frames,
    seconds_to_frames,
)


def test_rows_that_are_annotation_frames_round_trip_exactly():
    frames = np.arange(100, dtype=float)
    gt = np.array([7, 31, 64, 99])
    rows = boundary_rows(gt, frames)
    assert rows.tolist() == gt.tolist()
    assert row_boundary_frames(rows, frames).tolist() == gt.tolist()


def test_a_boundary_between_strided_rows_maps_to_the_middle():
    # stride 8: rows at frames 0, 8, 16, ...; boundaries 9..16 all start row 2
    frames = np.arange(0, 80, 8, dtype=float)
    assert boundary_rows(np.arange(9, 17), frames).tolist() == [2] * 8
    # the middle of the frames 9..16 it can be: 12.5 (the old rule said 16: 3.5 frames late)
    assert row_boundary_frames([2], frames).tolist() == [12.5]


def test_rows_outside_the_clip_and_repeats_are_dropped():
    frames = np.arange(10, dtype=float)
    assert row_boundary_frames([0, 3, 3, 10, 12], frames).tolist() == [3.0]
    assert edge_frames([0, 4, 10], frames, 10).tolist() == [0.0, 4.0, 10.0]
    assert frames_to_seconds([15], 30).tolist() == [0.5]


def test_grid_frames_counts_the_times_in_the_half_open_span():
    assert grid_frames(1.0, 30) == 30          # 0, 1/30, ..., 29/30
    assert grid_frames(1.001, 30) == 31
    assert grid_frames(6.506, 29.97) == 195    # a TAPOS instance at the annotation's rate
    assert grid_frames(195 / (30000 / 1001), 30000 / 1001) == 195


@settings(max_examples=300, deadline=None)
@given(rate=st.floats(12, 60), video_rate=st.floats(12, 60), stride=st.integers(1, 10),
       duration=st.floats(1.0, 30.0), seed=st.integers(0, 2**31 - 1))
def test_truth_round_trips_within_half_a_row_spacing(rate, video_rate, stride, duration, seed):
    """Ground truth (annotation frames at ``rate``) -> rows of a cache of a ``video_rate`` video at
    ``stride`` -> annotation frames: within half a row spacing, in annotation frames."""
    total = max(2, int(round(duration * rate)))
    n_grid = grid_frames(total / rate, video_rate)
    times = np.arange(0, n_grid, stride) / video_rate
    frames = row_frames(times, rate)
    if len(frames) < 2:
        return
    rng = np.random.default_rng(seed)
    gt = np.unique(rng.integers(1, total, size=int(rng.integers(1, 6))))
    rows = boundary_rows(gt, frames)
    inside = (rows > 0) & (rows < len(frames))
    back = (frames[rows[inside] - 1] + frames[rows[inside]]) / 2 + 0.5
    spacing = stride * rate / video_rate
    assert np.all(np.abs(back - gt[inside]) <= spacing / 2 + 1e-6)
    # the library function returns the same positions (sorted, without repeats)
    assert row_boundary_frames(rows, frames).tolist() == pytest.approx(sorted(set(np.round(back, 6))))


@pytest.mark.parametrize("stride", [1, 3, 8])
def test_mean_error_is_zero_for_boundaries_anywhere_between_rows(stride):
    frames = np.arange(0, 4000, stride, dtype=float)
    gt = np.arange(1, stride * 400 + 1)  # whole row spacings: every position between rows once
    rows = boundary_rows(gt, frames)
    est = (frames[rows - 1] + frames[rows]) / 2 + 0.5
    assert abs(np.mean(est - gt)) < 1e-9
    assert np.max(np.abs(est - gt)) <= stride / 2


def test_conversions_between_frames_and_seconds():
    assert frame_rate(195, 7.8) == 25.0  # TAPOS's rate: total_frames / duration
    np.testing.assert_array_equal(seconds_to_frames([0.0, 0.5, 2.0], 30.0), [0.0, 15.0, 60.0])
    np.testing.assert_array_equal(frames_to_seconds(seconds_to_frames([0.25, 3.0], 24.0), 24.0), [0.25, 3.0])
    np.testing.assert_array_equal(row_frames([0.5, 1.0], 25.0), seconds_to_frames([0.5, 1.0], 25.0))
    # rows at 10 per second on a 25 fps grid: the frame nearest t / 10 s, a half frame goes to the later one
    assert [nearest_grid_frame(t, 10.0, 25.0) for t in range(5)] == [0, 3, 5, 8, 10]
