"""Snippets of video frames for end-to-end TSN training (``tapos-tsn --input frames``).

As TSN prepared its inputs: frames at 340x256; RGB snippets are one frame (BGR, 0..255), flow
snippets stack the 5 fields between 6 consecutive frames (x1, y1, ..., x5, y5; clipped +-20 px,
0..255). Training augments with TSN's multi-scale crop (a crop of 256, 224, 192 or 168 px per
side, sides within one step of each other, at one of 13 fixed positions, resized to 224) and a
horizontal flip (flow x fields inverted: 255 - v); testing takes the centre 224 crop. Only the
frames the snippets need are decoded (ffmpeg's ``select``). Frame ``i`` of a clip is the one a
``tapos-extract`` cache of it holds in row ``i`` (the clip resampled by its timestamps to its
nominal rate, :mod:`tapos.data.clock`), so both TSNs place snippets alike.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from tapos.data.annotations import load_annotations
from tapos.data.clock import boundary_rows, frames_to_seconds, grid_frames, row_frames
from tapos.data.errors import TaposError
from tapos.data.machinery.ffmpeg import probe, read_frames
from tapos.data.videos import clips_from_annotations
from tapos.extract import CROP, FLOW_SIZE, FLOW_STACK, FlowComputer

from .schemes import get_sampling

SCALES = (1.0, 0.875, 0.75, 0.66)


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def multiscale_crop(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """TSN's GroupMultiScaleCrop(224, [1, .875, .75, .66]) with its 13 fixed offsets, one draw
    for the whole snippet group ``(n, H, W, C)``."""
    n, h, w, c = frames.shape
    base = min(h, w)
    sizes = [int(base * s) for s in SCALES]
    sizes = [CROP if abs(s - CROP) < 3 else s for s in sizes]
    pairs = [(sw, sh) for i, sh in enumerate(sizes) for j, sw in enumerate(sizes) if abs(i - j) <= 1]
    cw, ch = pairs[int(rng.integers(len(pairs)))]
    sx, sy = (w - cw) // 4, (h - ch) // 4
    offsets = [(0, 0), (4 * sx, 0), (0, 4 * sy), (4 * sx, 4 * sy), (2 * sx, 2 * sy), (0, 2 * sy), (4 * sx, 2 * sy),
               (2 * sx, 4 * sy), (2 * sx, 0), (sx, sy), (3 * sx, sy), (sx, 3 * sy), (3 * sx, 3 * sy)]
    x, y = offsets[int(rng.integers(len(offsets)))]
    out = np.empty((n, CROP, CROP, c), np.uint8)
    for i in range(n):
        out[i] = _resize(frames[i, y:y + ch, x:x + cw], CROP, CROP).reshape(CROP, CROP, c)
    return out


def center_crop(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    y, x = (h - CROP) // 2, (w - CROP) // 2
    return frames[:, y:y + CROP, x:x + CROP]


def flip(frames: np.ndarray, flow: bool) -> np.ndarray:
    out = frames[:, :, ::-1].copy()
    if flow:
        out[..., 0::2] = 255 - out[..., 0::2]  # the x component changes sign
    return out


class FrameSnippets(Dataset):
    """Items: ``frames (K, 224, 224, C)`` uint8 (C = 3 BGR, or 10 flow), ``label``, ``key``.

    Instances come from ``videos`` as ``tapos-extract --annotations`` finds them (a clip named by
    the instance key, or a cut of the source video); sampling as :class:`tsn.data.SnippetDataset`
    but on video frames, with flow snippets 5 frames long.
    """

    def __init__(self, videos, annotations, split: str, modality: str, sampling: str, num_segments: int,
                 train: bool, boundaries: Optional[Mapping] = None, seed: int = 0, flow_method: str = "dis",
                 flow_options: Optional[Mapping] = None):
        ann = load_annotations(annotations)
        clips, missing = clips_from_annotations(ann.path, videos, split)
        if missing:
            raise TaposError(f"{videos}: {len(missing)} {split} instances have no video (first: {missing[0][1]})")
        if not clips:
            raise TaposError(f"{ann.path}: split {split!r} has no instances")
        self.scheme = get_sampling(sampling)
        if self.scheme.predicted and (boundaries is None or any(c.key not in boundaries for c in clips)):
            raise TaposError(f"sampling {sampling!r} needs predicted boundaries for every {split} instance")
        self.ann, self.clips, self.modality, self.sampling = ann, clips, modality, sampling
        self.num_segments, self.train, self.boundaries = int(num_segments), train, boundaries
        self.seed, self.epoch = seed, 0
        self.length = FLOW_STACK if modality == "flow" else 1
        self.flow_method, self.flow_options = flow_method, flow_options
        if modality == "flow":  # an unknown method or bad options fail here, not in a loader process
            FlowComputer(flow_method, threads=1, crop=None, options=flow_options).close()
        self._layouts = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([self.ann[c.key].action for c in self.clips], dtype=np.int64)

    def _layout(self, idx):
        """Grid frames of the clip, their rate, and the first frame of each sub-action."""
        if idx not in self._layouts:
            clip = self.clips[idx]
            inst = self.ann[clip.key]
            info = probe(clip.path)
            n = grid_frames(info.duration if clip.start is None else inst.duration, info.fps)
            bounds = self.scheme.boundaries(inst, self.boundaries)
            frames = row_frames(frames_to_seconds(np.arange(n), info.fps), inst.fps)
            self._layouts[idx] = (n, info.fps, boundary_rows(bounds, frames).tolist())
        return self._layouts[idx]

    def starts(self, idx: int) -> np.ndarray:
        n, _, bounds = self._layout(idx)
        rng = np.random.default_rng((self.seed, self.epoch, idx)) if self.train else None
        return self.scheme.indices(n, bounds, self.num_segments, self.length, self.train, rng)

    def _decode(self, idx: int, wanted: np.ndarray) -> dict:
        clip = self.clips[idx]
        n, fps, _ = self._layout(idx)
        unique = sorted(set(int(i) for i in wanted))
        expr = "+".join(f"eq(n,{i})" for i in unique)
        gray = self.modality == "flow"
        frames = np.concatenate(list(read_frames(
            clip.path, *FLOW_SIZE, "gray" if gray else "bgr24", [("select", (expr,), {}), ("scale", FLOW_SIZE, {})],
            start=clip.start, rate=fps, max_frames=len(unique))))
        got = {i: frames[k] for k, i in enumerate(unique[:len(frames)])}
        last = frames[-1]
        return {i: got.get(i, last) for i in unique}  # past the end: the last frame, as TSN repeats it

    def __getitem__(self, idx: int) -> dict:
        n, _, _ = self._layout(idx)
        starts = self.starts(idx)
        if self.modality == "flow":
            wanted = np.concatenate([np.minimum(s + np.arange(self.length + 1), n - 1) for s in starts])
        else:
            wanted = starts
        frames = self._decode(idx, wanted)
        if self.modality == "flow":
            # on the CPU: items are made in DataLoader processes, where CUDA cannot start after a fork
            computer = FlowComputer(self.flow_method, threads=1, crop=None, options=self.flow_options)
            stacks = []
            for s in starts:
                seq = np.stack([frames[int(min(s + k, n - 1))] for k in range(self.length + 1)])[..., 0]
                fields = computer.fields(seq)  # (5, 256, 340, 2)
                stacks.append(np.concatenate(list(fields), axis=-1))
            snippets = np.stack(stacks)
        else:
            snippets = np.stack([frames[int(s)] for s in starts])
        rng = np.random.default_rng((self.seed, self.epoch, idx, 1)) if self.train else None
        if self.train:
            snippets = multiscale_crop(snippets, rng)
            if rng.random() < 0.5:
                snippets = flip(snippets, self.modality == "flow")
        else:
            snippets = center_crop(snippets)
        return {"frames": torch.from_numpy(np.ascontiguousarray(snippets)), "label": int(self.ann[self.clips[idx].key].action),
                "key": self.clips[idx].key}
