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
from typing import Callable, Dict, Mapping, Optional

import numpy as np

from tapos.data.options import OptionError

from .inputs import CROP, FLOW_BOUND, FLOW_SIZE, FLOW_STACK


# What each method's fields depend on besides the frames: recorded in the cache (the flow rows of
# two caches are comparable only when these agree).
METHOD_PARAMS: Dict[str, dict] = {
    "tvl1": {"implementation": "opencv DualTVL1", "parameters": "opencv defaults"},
    "dis": {"implementation": "opencv DIS", "preset": "medium"},
    "farneback": {"implementation": "opencv Farneback", "pyr_scale": 0.5, "levels": 3, "winsize": 15,
                  "iterations": 3, "poly_n": 5, "poly_sigma": 1.2},
    # its "parameters": tapos.extract.tvl1.DEFAULTS with the run's flow options applied
    "tvl1-torch": {"implementation": "tapos.extract.tvl1 (PyTorch Dual TV-L1, OpenCV's scheme)"},
}


def flow_parameters(method: str, options: Optional[Mapping] = None) -> dict:
    """The parameters of ``method``'s flow rows, as the cache records them (``options``: the
    method's own, for a method that takes them)."""
    out = {**METHOD_PARAMS[method]}
    if _batched(method):
        from .tvl1 import check_options

        out["parameters"] = check_options(options)
    elif options:
        raise OptionError(f"flow method {method}: takes no flow options (got {', '.join(options)}); "
                          f"only {', '.join(m for m in FLOW_METHODS if _batched(m))} does")
    return {**out, "size": list(FLOW_SIZE), "bound": FLOW_BOUND, "stack": FLOW_STACK}


def _batched(method: str) -> bool:
    return getattr(FLOW_METHODS[method], "batched", False)


def _tvl1():
    import cv2

    return cv2.optflow.DualTVL1OpticalFlow_create().calc


def _dis():
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return lambda a, b, _: dis.calc(a, b, None)


def _farneback():
    import cv2

    p = METHOD_PARAMS["farneback"]
    args = (p["pyr_scale"], p["levels"], p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"], 0)
    return lambda a, b, _: cv2.calcOpticalFlowFarneback(a, b, None, *args)


def _tvl1_torch(device="cpu", options: Optional[Mapping] = None, threads: Optional[int] = None):
    from .tvl1 import TVL1

    return TVL1(options, device, threads=threads).sequence


_tvl1_torch.batched = True


# name -> factory of a flow function (prev, next, None) -> (H, W, 2) float32. OpenCV's flow
# objects are not thread-safe, so each worker thread builds its own. A factory marked ``batched``
# takes ``device``, ``options`` (its parameters) and ``threads`` (torch's, on CPU) and returns a
# function of a whole chunk, (n, H, W) uint8 frames -> (n - 1, H, W, 2) float32: all pairs at once.
FLOW_METHODS: Dict[str, Callable] = {
    "tvl1": _tvl1,  # Dual TV-L1 (the paper's and TSN's choice; slow on CPU)
    "dis": _dis,  # Dense Inverse Search, medium preset: hundreds of frames/s on CPU
    "farneback": _farneback,
    "tvl1-torch": _tvl1_torch,  # Dual TV-L1 as OpenCV's, in PyTorch: batched, on CPU or CUDA
}


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
        if method not in FLOW_METHODS:
            raise ValueError(f"unknown flow method {method!r} (expected one of {', '.join(FLOW_METHODS)})")
        self.method = method
        self.crop = crop
        self._local = threading.local()
        self._batch = None
        if _batched(method):
            self._batch = FLOW_METHODS[method](device=device, options=options, threads=threads or 1)
            threads = 1  # no pool: the method computes every pair of a call at once
        elif options:
            flow_parameters(method, options)  # raises: the method takes none
        threads = threads or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads)) if threads > 1 else None

    def _one(self, pair) -> np.ndarray:
        fn = getattr(self._local, "fn", None)
        if fn is None:
            fn = self._local.fn = FLOW_METHODS[self.method]()
        prev, nxt = pair
        field = quantize(fn(prev, nxt, None))
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
