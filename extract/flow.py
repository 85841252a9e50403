"""Optical flow for the flow stream, as TSN prepared it.

Fields are computed between consecutive grayscale frames of 340x256, clipped to +-20 pixels and
mapped linearly to 0..255 (uint8), then centre-cropped to 224x224 like the RGB frames. The flow
row of frame ``t`` stacks the 5 fields starting at ``t`` (``t->t+1``, ..., ``t+4->t+5``) as
channels x1, y1, ..., x5, y5: it describes the motion that starts at frame ``t``. Where the clip
ends, the last field is repeated; a one-frame clip has zero motion (128 everywhere).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Optional

import numpy as np

from . import opencv_flow, tvl1  # noqa: F401  (register the methods: tvl1, dis, farneback, tvl1-torch)
from .flow_methods import FLOW_METHODS, flow_parameters, get_flow_method
from .inputs import CROP, FLOW_BOUND, FLOW_STACK

__all__ = ["FLOW_METHODS", "FlowComputer", "FlowStacker", "center_crop", "flow_parameters", "quantize"]


def quantize(field: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Flow in pixels -> uint8: -bound -> 0, 0 -> 127.5 (rounded), +bound -> 255."""
    scaled = (np.clip(field, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.rint(scaled).astype(np.uint8)


def center_crop(arr: np.ndarray, size: int = CROP) -> np.ndarray:
    h, w = arr.shape[-3:-1] if arr.ndim == 4 else arr.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return arr[..., y:y + size, x:x + size, :] if arr.ndim == 4 else arr[y:y + size, x:x + size]


class FlowComputer:
    """Computes quantized, cropped fields for consecutive frames: per pair with a pool of
    ``threads`` threads, or, for a batched method, all pairs of a call at once on ``device``
    (``options``: its own; ``threads``: torch's CPU threads). ``threads=None``: one per core for a
    pool; 1 for a batched method on CPU (its operations are small: one clip per core, as the
    pipeline's decoders give, keeps the cores busy without threads waiting on each other)."""

    def __init__(self, method: str = "tvl1", threads: Optional[int] = 1, crop: Optional[int] = CROP,
                 device: str = "cpu", options: Optional[Mapping] = None):
        self.flow = get_flow_method(method)
        self.method = method
        self.crop = crop
        self.options = self.flow.options(options)  # checked: bad options fail here, in one line
        self._local = threading.local()
        self._batch = None
        if self.flow.batched:
            self._batch = self.flow.batch_function(device, self.options, threads or 1)
            threads = 1  # no pool: the method computes every pair of a call at once
        threads = threads or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads)) if threads > 1 else None

    def _one(self, pair) -> np.ndarray:
        fn = getattr(self._local, "fn", None)
        if fn is None:
            fn = self._local.fn = self.flow.pair_function(self.options)
        prev, nxt = pair
        field = quantize(fn(prev, nxt))
        return field if self.crop is None else center_crop(field, self.crop)

    def fields(self, frames: np.ndarray) -> np.ndarray:
        """``frames (n, H, W)`` uint8 gray -> ``(n-1, crop, crop, 2)`` uint8 fields (``crop=None``:
        the whole ``(H, W)``)."""
        if len(frames) < 2:
            h, w = (self.crop, self.crop) if self.crop else frames.shape[1:3]
            return np.empty((0, h, w, 2), np.uint8)
        if self._batch is not None:
            field = self._batch(np.ascontiguousarray(frames))
            return quantize(field if self.crop is None else center_crop(field, self.crop))
        pairs = [(frames[i], frames[i + 1]) for i in range(len(frames) - 1)]
        out = list(self._pool.map(self._one, pairs)) if self._pool else [self._one(p) for p in pairs]
        return np.stack(out)

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()


class FlowStacker:
    """Streams gray frames in, flow stacks for requested frames out.

    ``push(frames, rows)``: ``frames`` are the next consecutive gray frames of the clip; ``rows``
    the (global, non-decreasing) frame numbers whose stacks are wanted, possibly repeated. Stacks
    are returned as soon as their 5 fields exist; ``finish()`` returns the rest, repeating the
    last field past the end of the clip.
    """

    def __init__(self, computer: FlowComputer):
        self.computer = computer
        self._last = None       # last frame seen (the start of the next field)
        self._fields = []       # fields still needed, as (index, field)
        self._next_field = 0    # index of the next field to compute
        self._pending = []      # rows asked for, not yet produced
        self._frames_seen = 0

    def push(self, frames: np.ndarray, rows) -> np.ndarray:
        frames = frames.reshape(frames.shape[0], frames.shape[1], frames.shape[2])
        self._pending.extend(int(r) for r in rows)
        seq = frames if self._last is None else np.concatenate([self._last[None], frames])
        new = self.computer.fields(seq)
        self._fields.extend(zip(range(self._next_field, self._next_field + len(new)), new))
        self._next_field += len(new)
        self._last = frames[-1]
        self._frames_seen += len(frames)
        return self._emit(final=False)

    def finish(self) -> np.ndarray:
        return self._emit(final=True)

    def _emit(self, final: bool) -> np.ndarray:
        crop = self.computer.crop
        ready = []
        n_fields = self._next_field
        by_index = dict(self._fields)
        while self._pending:
            row = self._pending[0]
            if not final and row + FLOW_STACK > n_fields:
                break  # its last field needs frames not decoded yet
            if n_fields == 0:
                stack = np.full((crop, crop, 2 * FLOW_STACK), 128, np.uint8)
            else:
                idx = [min(row + k, n_fields - 1) for k in range(FLOW_STACK)]
                stack = np.concatenate([by_index[i] for i in idx], axis=-1)
            ready.append(stack)
            self._pending.pop(0)
        keep_from = self._pending[0] if self._pending else n_fields - 1
        self._fields = [(i, f) for i, f in self._fields if i >= min(keep_from, n_fields - 1)]
        if not ready:
            return np.empty((0, crop, crop, 2 * FLOW_STACK), np.uint8)
        return np.stack(ready)
