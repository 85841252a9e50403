"""From a video (or an instance cut out of one) to model-ready uint8 frames, streamed in chunks.

RGB: resized so the short side is 256 (bilinear), centre crop 224, BGR, 0..255 (the weights
subtract the mean). Flow: 340x256 grayscale frames, fields as in :mod:`.flow`. ffmpeg does the
decoding, rotation, resizing and cropping in its own processes (one per stream).

Rows: every frame by default; ``stride`` keeps frames 0, S, 2S, ...; ``fps`` keeps, for row t,
the frame nearest to ``t / fps`` seconds (``round(t * rate / fps)``). Variable-frame-rate input
is first resampled to a constant rate: ``fps`` when given, else its average rate.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from tapos.data.ffmpeg import VideoError, VideoInfo, probe, read_frames

from .flow import FLOW_SIZE, FlowComputer, FlowStacker

SHORT_SIDE = 256
CROP = 224
RATE_TOLERANCE = 0.01  # a video within 1% of the annotation's rate is taken to have its frames


@dataclass(frozen=True)
class Clip:
    """What to extract: a whole video, or the instance ``[start, start + duration)`` of one."""

    key: str
    path: Path
    start: Optional[float] = None         # seconds into the video
    duration: Optional[float] = None      # seconds
    total_frames: Optional[int] = None    # the annotation's frame count for the instance


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
    frame_index: np.ndarray            # (n,) frame of the clip each row comes from
    rgb: Optional[np.ndarray] = None   # (n, 224, 224, 3) uint8 BGR
    flow: Optional[np.ndarray] = None  # (n, 224, 224, 10) uint8


@dataclass
class ClipMeta:
    fps: float          # rows per second
    num_frames: int     # frames of the clip at its (normalised) native rate
    rate: float         # that native rate


def instance_frames(duration: float, video_rate: float, total_frames: Optional[int] = None) -> int:
    """Frames of a ``duration``-second instance in a video at ``video_rate``: the annotation's
    ``total_frames`` when the video runs at the annotation's rate (within 1%), else the video's own."""
    if total_frames and duration > 0:
        ann_rate = total_frames / duration
        if abs(ann_rate - video_rate) <= RATE_TOLERANCE * ann_rate:
            return int(total_frames)
    return int(round(duration * video_rate))


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
            frame = int(math.floor(self.t * self.rate / self.sampling.fps + 0.5))
            if frame >= first + n:
                break
            out.append(frame)
            self.t += 1
        return np.asarray(out, dtype=np.int64)


class ClipReader:
    """Iterates :class:`Chunk` s of one clip; ``meta`` is set once the iteration has ended."""

    def __init__(self, clip: Clip, modalities=("rgb",), sampling: Sampling = Sampling(),
                 flow_method: str = "tvl1", flow_threads: int = 1, chunk: int = 32):
        self.clip, self.modalities, self.sampling = clip, tuple(modalities), sampling
        self.flow_method, self.flow_threads, self.chunk = flow_method, flow_threads, chunk
        self.meta: Optional[ClipMeta] = None

    def _plan(self, info: VideoInfo):
        """Native rate, seek, frame limit and the frame count recorded for the clip."""
        resample = None
        rate = info.fps
        if info.variable_rate:
            rate = self.sampling.fps or info.fps
            resample = rate
        if not rate > 0:
            raise VideoError(f"{self.clip.path}: unknown frame rate")
        c = self.clip
        if c.start is None:
            return rate, resample, None, None, None
        duration = c.duration if c.duration is not None else info.duration - c.start
        expected = instance_frames(duration, rate, c.total_frames)
        # half a frame early, so the first frame is the one nearest the start time
        seek = max(0.0, c.start - 0.5 / rate)
        return rate, resample, seek, expected, expected

    def __iter__(self) -> Iterator[Chunk]:
        clip = self.clip
        info = cached_probe(Path(clip.path))
        rate, resample, seek, limit, num_frames = self._plan(info)
        messages = []
        common = {"start": seek, "max_frames": limit, "rate": resample, "chunk": self.chunk, "messages": messages}
        rgb_iter = (read_frames(clip.path, CROP, CROP, "bgr24", _rgb_filters(info), **common)
                    if "rgb" in self.modalities else iter(()))
        gray_iter = (read_frames(clip.path, *FLOW_SIZE, "gray", _gray_filters(), **common)
                     if "flow" in self.modalities else iter(()))
        picker = _RowPicker(self.sampling, rate)
        flow = FlowStacker(FlowComputer(self.flow_method, self.flow_threads, CROP)) if "flow" in self.modalities else None
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
                out = self._pair(pending_rows, pending_rgb, stacks, final=False)
                if out is not None:
                    yield out
            self._check_count(frames, limit, info, rate, messages)
            out = self._pair(pending_rows, pending_rgb, flow.finish() if flow else None, final=True)
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
        self.meta = ClipMeta(fps=float(fps), num_frames=int(num_frames), rate=float(rate))

    def _check_count(self, frames, limit, info, rate, messages):
        clip = self.clip
        if frames == 0:
            where = f" at {clip.start:.3f}s" if clip.start is not None else ""
            raise VideoError(f"{clip.path}: no frames decoded{where} (is the clip past the end of the video?)")
        if limit is not None and frames < 0.9 * limit:
            raise VideoError(f"{clip.path}: the instance {clip.key} needs {limit} frames from {clip.start:.3f}s, "
                             f"the video has {frames} (it ends at {info.duration:.2f}s)")
        claimed = int(round(info.duration * rate))
        if limit is None and messages and frames < 0.9 * claimed:
            last = messages[-1].strip().split("] ")[-1]
            raise VideoError(f"{clip.path}: damaged or truncated, decoded {frames} of {claimed} frames ({last})")

    def _pair(self, rows, rgb, stacks, final):
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
              flow_threads: int = 1):
    """The whole clip in memory: ``(Chunk with every row, ClipMeta)`` (tests, short clips)."""
    reader = ClipReader(clip, modalities, sampling, flow_method, flow_threads)
    chunks = list(reader)
    cat = lambda name: (np.concatenate([getattr(c, name) for c in chunks])  # noqa: E731
                        if chunks and getattr(chunks[0], name) is not None else None)
    return Chunk(cat("frame_index"), cat("rgb"), cat("flow")), reader.meta
