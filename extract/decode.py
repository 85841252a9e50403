"""From a video (or an instance cut out of one) to model-ready uint8 frames, streamed in chunks.

RGB: resized so the short side is 256 (bilinear), centre crop 224, BGR, 0..255 (the weights
subtract the mean). Flow: 340x256 grayscale frames, fields as in :mod:`.flow`. ffmpeg does the
decoding, rotation, resizing and cropping in its own processes (one per stream).

The clock (:mod:`tapos.data.clock`): a clip is resampled by its presentation timestamps to a
constant-rate grid at the video's nominal rate R (:func:`tapos.data.machinery.ffmpeg.nominal_rate`): grid
frame ``k`` is the video's frame nearest ``k / R`` seconds after the clip start, duplicated or
dropped as the timestamps say (variable rate, missing frames, an AVI's empty chunks), so the grid
covers the clip's real duration. Rows: every grid frame by default; ``stride`` keeps grid frames
0, S, 2S, ...; ``fps`` keeps, for row t, the grid frame nearest ``t / fps`` seconds
(``round(t * R / fps)``). A row's time is its grid frame's, ``frame_index / R``. A TAPOS
instance cut out of a source video is the span ``[start, start + duration)`` of the source's
clock (its own start time and edit list applied, as a player shows it).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from tapos.data.clock import frames_to_seconds, grid_frames, nearest_grid_frame, seconds_to_frames
from tapos.data.machinery.ffmpeg import VideoError, VideoInfo, probe, read_frames
from tapos.data.videos import Clip

from .flow import FlowComputer, FlowStacker
from .inputs import CROP, FLOW_SIZE, SHORT_SIDE



@dataclass(frozen=True)
class Sampling:
    stride: int = 1
    fps: Optional[float] = None

    def __post_init__(self):
        if self.stride < 1 or (self.fps is not None and not self.fps > 0):
            raise ValueError("stride must be >= 1 and fps > 0")
        if self.stride != 1 and self.fps is not None:
            raise ValueError("give stride or fps, not both")


@dataclass
class Chunk:
    frame_index: np.ndarray            # (n,) grid frame of the clip each row comes from
    rgb: Optional[np.ndarray] = None   # (n, 224, 224, 3) uint8 BGR
    flow: Optional[np.ndarray] = None  # (n, 224, 224, 10) uint8


@dataclass
class ClipMeta:
    fps: float          # rows per second
    num_frames: int     # frames of the clip's constant-rate grid
    rate: float         # that grid's rate (the video's nominal rate)
    note: Optional[str] = None  # the video's frame count and duration disagree (VideoInfo.rate_mismatch)

    def timestamps(self, frame_index) -> np.ndarray:
        """Seconds from the clip start of rows taken from these grid frames."""
        return frames_to_seconds(frame_index, self.rate)


@functools.lru_cache(maxsize=256)
def cached_probe(path: Path) -> VideoInfo:
    return probe(path)


def _rgb_filters(info: VideoInfo):
    w, h = (info.height, info.width) if info.rotation % 180 else (info.width, info.height)
    size = {"w": -2, "h": SHORT_SIDE} if w >= h else {"w": SHORT_SIDE, "h": -2}
    return [("scale", (), {**size, "flags": "bilinear"}), ("crop", (CROP, CROP), {})]


def _gray_filters():
    return [("scale", FLOW_SIZE, {"flags": "bilinear"})]


class _RowPicker:
    """Which decoded frames become rows (possibly more than once when ``fps`` > the rate)."""

    def __init__(self, sampling: Sampling, rate: float):
        self.sampling, self.rate, self.t = sampling, rate, 0

    def take(self, first: int, n: int) -> np.ndarray:
        if self.sampling.fps is None:
            start = -(-first // self.sampling.stride) * self.sampling.stride
            return np.arange(start, first + n, self.sampling.stride, dtype=np.int64)
        out = []
        while True:
            frame = nearest_grid_frame(self.t, self.sampling.fps, self.rate)
            if frame >= first + n:
                break
            out.append(frame)
            self.t += 1
        return np.asarray(out, dtype=np.int64)


class ClipReader:
    """Iterates :class:`Chunk` s of one clip; ``meta`` is set once the iteration has ended."""

    def __init__(self, clip: Clip, modalities=("rgb",), sampling: Sampling = Sampling(),
                 flow_method: str = "tvl1", flow_threads: int = 1, chunk: int = 32, flow_device: str = "cpu",
                 flow_options=None):
        self.clip, self.modalities, self.sampling = clip, tuple(modalities), sampling
        self.flow_method, self.flow_threads, self.chunk = flow_method, flow_threads, chunk
        self.flow_device, self.flow_options = flow_device, flow_options  # for a batched method (tvl1-torch)
        self.meta: Optional[ClipMeta] = None

    def _plan(self, info: VideoInfo):
        """Grid rate, clip start and the number of grid frames (None: to the end of the video)."""
        rate = info.fps
        if not rate > 0:
            raise VideoError(f"{self.clip.path}: unknown frame rate")
        c = self.clip
        if c.start is None:
            return rate, None, None
        duration = c.duration if c.duration is not None else info.duration - c.start
        return rate, c.start, grid_frames(duration, rate)

    def __iter__(self) -> Iterator[Chunk]:
        clip = self.clip
        info = cached_probe(Path(clip.path))
        rate, start, limit = self._plan(info)
        num_frames = limit
        messages = []
        common = {"start": start, "max_frames": limit, "rate": rate, "chunk": self.chunk, "messages": messages}
        rgb_iter = (read_frames(clip.path, CROP, CROP, "bgr24", _rgb_filters(info), **common)
                    if "rgb" in self.modalities else iter(()))
        gray_iter = (read_frames(clip.path, *FLOW_SIZE, "gray", _gray_filters(), **common)
                     if "flow" in self.modalities else iter(()))
        picker = _RowPicker(self.sampling, rate)
        flow = (FlowStacker(FlowComputer(self.flow_method, self.flow_threads, CROP, self.flow_device, self.flow_options))
                if "flow" in self.modalities else None)
        pending_rgb, pending_rows, frames = [], [], 0
        self._flow_buf = []
        try:
            for rgb, gray in zip_longest(rgb_iter, gray_iter):
                n = len(rgb) if rgb is not None else len(gray)
                if rgb is not None and gray is not None and len(rgb) != len(gray):
                    raise VideoError(f"{clip.path}: the RGB and flow decoders disagree on the frame count")
                rows = picker.take(frames, n)
                pending_rows.extend(rows.tolist())
                if rgb is not None:
                    pending_rgb.extend(rgb[rows - frames])
                stacks = flow.push(gray, rows) if flow else None
                frames += n
                out = self._pair(pending_rows, pending_rgb, stacks)
                if out is not None:
                    yield out
            self._check_count(frames, limit, info, rate, messages)
            out = self._pair(pending_rows, pending_rgb, flow.finish() if flow else None)
            if out is not None:
                yield out
        finally:
            for it in (rgb_iter, gray_iter):
                if hasattr(it, "close"):
                    it.close()
            if flow:
                flow.computer.close()
        if num_frames is None:
            num_frames = frames
        fps = self.sampling.fps or rate / self.sampling.stride
        self.meta = ClipMeta(fps=float(fps), num_frames=int(num_frames), rate=float(rate), note=info.rate_mismatch)

    def _check_count(self, frames, limit, info, rate, messages):
        clip = self.clip
        if frames == 0:
            where = f" at {clip.start:.3f}s" if clip.start is not None else ""
            raise VideoError(f"{clip.path}: no frames decoded{where} (is the clip past the end of the video?)")
        if limit is not None and frames < 0.9 * limit:
            raise VideoError(f"{clip.path}: the instance {clip.key} needs {limit} frames from {clip.start:.3f}s, "
                             f"the video has {frames} (it ends at {info.duration:.2f}s)")
        claimed = int(round(float(seconds_to_frames(info.duration, rate))))
        if limit is None and messages and frames < 0.9 * claimed:
            last = messages[-1].strip().split("] ")[-1]
            raise VideoError(f"{clip.path}: damaged or truncated, decoded {frames} of {claimed} frames ({last})")

    def _pair(self, rows, rgb, stacks):
        """Rows whose every modality is ready (flow lags by the 5 frames it looks ahead)."""
        n = len(rows)
        if stacks is not None:
            self._flow_buf.extend(stacks)
            n = len(self._flow_buf)
        if "rgb" in self.modalities:
            n = min(n, len(rgb))
        if n == 0:
            return None
        chunk = Chunk(np.asarray(rows[:n], dtype=np.int64))
        if "rgb" in self.modalities:
            chunk.rgb = np.stack(rgb[:n])
            del rgb[:n]
        if stacks is not None:
            chunk.flow = np.stack(self._flow_buf[:n])
            del self._flow_buf[:n]
        del rows[:n]
        return chunk


def read_clip(clip: Clip, modalities=("rgb",), sampling: Sampling = Sampling(), flow_method: str = "tvl1",
              flow_threads: int = 1, flow_device: str = "cpu", flow_options=None):
    """The whole clip in memory: ``(Chunk with every row, ClipMeta)`` (tests, short clips)."""
    reader = ClipReader(clip, modalities, sampling, flow_method, flow_threads, flow_device=flow_device,
                        flow_options=flow_options)
    chunks = list(reader)
    cat = lambda name: (np.concatenate([getattr(c, name) for c in chunks])  # noqa: E731
                        if chunks and getattr(chunks[0], name) is not None else None)
    return Chunk(cat("frame_index"), cat("rgb"), cat("flow")), reader.meta
