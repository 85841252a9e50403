"""The clock: the one rule between time, cache rows and annotation frames.

Every stage moves boundaries through these functions (training targets, predictions,
``tapos-parse video``, analysis, both TSNs), so they all agree.

- **Time.** Seconds from the clip's start (an instance's start, or a whole video's first
  presented instant). Row ``t`` of a cache is at ``timestamps[t]`` seconds: the row holds the
  video's frame nearest that time (see :func:`tapos.data.machinery.ffmpeg.read_frames`).
- **Frames.** Annotation frame ``f`` of an instance is at ``f / rate`` seconds, with
  ``rate = total_frames / duration`` (TAPOS stores no rate). A row's position in annotation
  frames is ``timestamps[t] * rate`` (:func:`row_frames`), fractional when the video's rate is
  not the annotation's or rows skip frames.
- **Boundaries.** Boundary ``b`` (``substages``: the first frame of a new sub-action) is the
  instant between frames ``b - 1`` and ``b``, i.e. position ``b - 1/2``. Its row is the first row
  past that instant (:func:`boundary_rows`). A predicted boundary between rows ``r - 1`` and
  ``r`` is at the instant halfway between them, i.e. annotation frame
  ``(frames[r-1] + frames[r]) / 2 + 1/2`` (:func:`row_boundary_frames`). The round trip is
  exact when rows are annotation frames and within half a row spacing otherwise; its mean error
  is 0 for boundaries that fall anywhere between two rows. (Taking row ``r``'s own frame, the
  rule before, puts boundaries on average half a row spacing late: 3.5 frames at stride 8.)
- **Seconds of a boundary**, as GEBD files and ``--seconds`` predictions give them:
  ``frame / rate``, the time of the first frame of the new sub-action.
- **Conversions.** Every frame <-> second conversion in tapos goes through :func:`frame_rate`,
  :func:`frames_to_seconds` and :func:`seconds_to_frames` (annotation frames at an instance's
  rate, a clip's grid frames at its rate, or rows at rows per second), so each is one product
  or quotient in float64, the same everywhere; rows taken at a row rate pick their grid frame
  with :func:`nearest_grid_frame`. (One keeps its own order of operations, as its numbers would
  otherwise move: a GEBD file's seconds -> frames, ``t * n / duration``, in tapos.data.layouts.)
"""
from __future__ import annotations

import math

import numpy as np

# Positions within this many frames of an instant count as at it (float noise): ties go to the
# earlier sub-action, deterministically.
_EPS = 1e-6
DECIMALS = 6  # boundary frames are rounded to this many decimals (no 12.499999999 in files)


def frame_rate(frames, duration: float) -> float:
    """Frames per second of ``frames`` frames over ``duration`` seconds: an instance's annotation
    rate (``total_frames / duration``), a clip's grid rate."""
    return float(frames) / duration


def seconds_to_frames(seconds, rate: float) -> np.ndarray:
    """Seconds -> frames at ``rate`` per second: ``seconds * rate`` (float64, unrounded)."""
    return np.asarray(seconds, dtype=np.float64) * float(rate)


def row_frames(timestamps, rate: float) -> np.ndarray:
    """Each row's position in annotation frames: ``timestamps * rate`` (float64)."""
    return seconds_to_frames(timestamps, rate)


def nearest_grid_frame(row: int, row_rate: float, rate: float) -> int:
    """The grid frame (frames at ``rate``) nearest the time ``row / row_rate`` of row ``row`` of
    rows at ``row_rate`` per second (halves go to the later frame)."""
    # row * rate / row_rate, in this order: what every cache extracted at a row rate (--fps) holds;
    # (row / row_rate) * rate can differ in the last bit and so move a frame that lies at a half
    return int(math.floor(row * rate / row_rate + 0.5))


def boundary_rows(boundaries, frames) -> np.ndarray:
    """Annotation boundaries -> the first row of each new sub-action: the first row whose
    position ``frames[t]`` is past the instant ``b - 1/2`` (int64; ``len(frames)`` when none)."""
    instants = np.asarray(boundaries, dtype=np.float64) - 0.5
    return np.searchsorted(np.asarray(frames, dtype=np.float64), instants + _EPS, side="right").astype(np.int64)


def row_boundary_frames(rows, frames) -> np.ndarray:
    """Boundary rows (a new sub-action starts at row ``r``, ``0 < r < T``) -> annotation frames:
    the instant halfway between rows ``r - 1`` and ``r``, plus half a frame (float64, sorted,
    without duplicates; rows outside ``1..T-1`` are dropped)."""
    frames = np.asarray(frames, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    out = np.unique(_between(frames, rows[(rows > 0) & (rows < frames.size)]))
    return out[out > 0]


def _between(frames: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The annotation frame of a boundary before each row in ``1..T-1``: halfway between rows
    ``r - 1`` and ``r``, plus half a frame."""
    return np.round((frames[rows - 1] + frames[rows]) / 2 + 0.5, DECIMALS)


def frames_to_seconds(frames, rate: float) -> np.ndarray:
    """Frames at ``rate`` per second -> seconds from the clip start: ``frame / rate`` (float64; for
    boundaries the GEBD convention, for a clip's grid frames or rows their times)."""
    return np.asarray(frames, dtype=np.float64) / float(rate)


def grid_frames(duration: float, rate: float) -> int:
    """Frames of a ``duration``-second clip resampled to ``rate``: the grid times ``k / rate``
    that fall in ``[0, duration)``."""
    return max(0, int(math.ceil(float(duration) * float(rate) - _EPS)))


def edge_frames(rows, frames, total: float) -> np.ndarray:
    """Segment edges given in rows (``0``, boundary rows, ``T``) -> annotation frames: 0 stays 0,
    ``T`` becomes ``total`` (the clip's end), a boundary row follows :func:`row_boundary_frames`."""
    frames = np.asarray(frames, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    mid = _between(frames, np.clip(rows, 1, frames.size - 1)) if frames.size > 1 else np.zeros(rows.shape)
    return np.where(rows <= 0, 0.0, np.where(rows >= frames.size, float(total), mid))
