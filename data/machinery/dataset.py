"""A torch ``Dataset`` of cached features joined with their annotations."""
from __future__ import annotations

import sys

import numpy as np
import torch
from torch.utils.data import Dataset

from ..annotations import Annotations
from ..clock import boundary_rows, row_frames
from ..errors import FeatureCacheError
from ..features import FeatureReader, length_mismatch, parse_modality


class FeatureDataset(Dataset):
    """Items of one split: features of an instance with its boundaries and action.

    Each item is a dict:

    - ``key``: the global instance key
    - ``features``: float32 tensor ``(T, D)`` (modalities concatenated in the order asked)
    - ``frames``: float64 tensor ``(T,)``, each row's position in annotation frames (its time
      times the annotation's rate, :mod:`tapos.data.clock`)
    - ``boundaries``: float64 tensor ``(B,)``, internal boundaries in annotation frames
    - ``row_boundaries``: int64 tensor ``(B,)``, the first row of each new sub-action (the clock's
      :func:`~tapos.data.clock.boundary_rows`)
    - ``action``: int class id; ``total_frames``: int, the annotation's frame count

    ``missing="error"`` stops when an annotated instance has no features; ``"skip"`` drops it
    with a warning that counts them.
    """

    def __init__(self, features, annotations: Annotations, split="train", modality="rgb",
                 missing: str = "error", check_lengths: bool = True):
        self.reader = features if isinstance(features, FeatureReader) else FeatureReader(features)
        self.modality = parse_modality(modality)
        subset = annotations.split(split)
        if len(subset) == 0:
            raise FeatureCacheError(f"{annotations.path}: split {split!r} has no instances")
        present = [inst for inst in subset.values() if inst.key in self.reader]
        absent = len(subset) - len(present)
        if absent:
            first = next(k for k in subset if k not in self.reader)
            msg = (f"{self.reader.path}: {absent} of {len(subset)} {split} instances have no features "
                   f"(first: {first})")
            if missing != "skip" or not present:
                raise FeatureCacheError(msg)
            print(f"warning: {msg}; skipped", file=sys.stderr)
        self.instances = present
        if check_lengths:
            for inst in self.instances:
                self._check_length(inst)

    def _check_length(self, inst) -> None:
        info = self.reader.info(inst.key)
        missing = [m for m in self.modality if m not in info.dims]
        if missing:
            raise FeatureCacheError(f"{self.reader.path}: instance {inst.key}: no {missing[0]} features")
        problem = length_mismatch(info.duration, inst.duration, info.fps)
        if problem:
            raise FeatureCacheError(f"{self.reader.path}: instance {inst.key}: {info.num_rows} rows at "
                                    f"{info.fps:g} fps cover {problem}")

    @property
    def dim(self) -> int:
        info = self.reader.info(self.instances[0].key)
        return sum(info.dims[m] for m in self.modality)

    @property
    def keys(self) -> list:
        return [inst.key for inst in self.instances]

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, idx: int) -> dict:
        inst = self.instances[idx]
        feats = self.reader.read(inst.key, self.modality)
        frames = row_frames(self.reader.timestamps(inst.key), inst.fps)
        bnds = np.asarray(inst.boundaries, dtype=np.float64)
        rows = boundary_rows(bnds, frames)
        return {
            "key": inst.key,
            "features": torch.from_numpy(feats),
            "frames": torch.from_numpy(frames),
            "boundaries": torch.from_numpy(bnds),
            "row_boundaries": torch.from_numpy(rows.astype(np.int64)),
            "action": inst.action,
            "total_frames": inst.total_frames,
        }


def feature_stats(dataset, max_instances: int = 2000, seed: int = 0):
    """Per-dimension mean and std over the rows of (at most ``max_instances``) instances."""
    rng = np.random.default_rng(seed)
    idx = np.arange(len(dataset))
    if len(idx) > max_instances:
        idx = np.sort(rng.choice(idx, size=max_instances, replace=False))
    n, s, ss = 0, None, None
    for i in idx:
        x = dataset[int(i)]["features"].double()
        s = x.sum(0) if s is None else s + x.sum(0)
        ss = (x * x).sum(0) if ss is None else ss + (x * x).sum(0)
        n += x.shape[0]
    mean = s / n
    std = torch.sqrt(torch.clamp(ss / n - mean * mean, min=0.0)) + 1e-4
    return mean.float().numpy(), std.float().numpy()
