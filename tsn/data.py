"""Snippets of cached features for the TSN: K rows per instance, chosen by a sampling scheme."""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from tapos.data.clock import boundary_rows, row_frames
from tapos.data.machinery.dataset import FeatureDataset
from tapos.data.errors import TaposError

from .schemes import SAMPLINGS, get_sampling

__all__ = ["SAMPLINGS", "SnippetDataset"]
MEMORY_LIMIT = 1 << 30  # bytes of float32 features a dataset keeps in memory


class SnippetDataset(Dataset):
    """Items: ``features (K, D)`` float32 (one cached row per snippet), ``label``, ``key``.

    A cached row is one snippet: an RGB frame, or a flow row (already a stack of 5 fields), so
    snippets are one row long. ``sampling``: a scheme registered in :mod:`tapos.tsn.schemes`:
    ``uniform`` (TSN's even segments), ``aligned`` (the annotated sub-actions), ``parsed`` (the
    predicted ``boundaries``, ``{key: [annotation frame, ...]}`` as ``tapos-parse predict``
    writes), or one of your own. Train mode draws positions anew each epoch (seeded by ``seed``
    and the epoch, see :meth:`set_epoch`); test mode is deterministic.
    """

    def __init__(self, features, annotations, split: str, modality: str, sampling: str, num_segments: int,
                 train: bool, boundaries: Optional[Mapping] = None, seed: int = 0):
        self.scheme = get_sampling(sampling)
        if self.scheme.predicted and boundaries is None:
            raise TaposError(f"sampling {sampling!r} needs predicted boundaries (--boundaries PRED.json)")
        self.base = FeatureDataset(features, annotations, split, modality)
        if self.scheme.predicted:
            missing = [k for k in self.base.keys if k not in boundaries]
            if missing:
                raise TaposError(f"{len(missing)} of {len(self.base)} {split} instances have no predicted boundaries "
                                 f"(first: {missing[0]}); predict every split: tapos-parse predict --split all")
        self.sampling, self.num_segments, self.train = sampling, int(num_segments), train
        self.boundaries = boundaries
        self.seed, self.epoch = seed, 0
        self._layouts = {}
        # Small caches (the synthetic benchmarks, subsets) are kept in memory after the first read;
        # large ones (TAPOS: ~10 GB per modality) are read K rows at a time.
        reader = self.base.reader
        size = sum(reader.info(i.key).num_rows for i in self.base.instances) * self.base.dim * 4
        self._memory = {} if size <= MEMORY_LIMIT else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([inst.action for inst in self.base.instances], dtype=np.int64)

    def layout(self, idx: int) -> tuple:
        """``(rows, segment boundaries in rows)`` of an instance (metadata only, cached)."""
        if idx not in self._layouts:
            inst = self.base.instances[idx]
            reader = self.base.reader
            frames = row_frames(reader.timestamps(inst.key), inst.fps)
            bounds = self.scheme.boundaries(inst, self.boundaries)
            self._layouts[idx] = (len(frames), boundary_rows(bounds, frames))
        return self._layouts[idx]

    def snippet_rows(self, idx: int) -> np.ndarray:
        num_rows, bounds = self.layout(idx)
        rng = np.random.default_rng((self.seed, self.epoch, idx)) if self.train else None
        return self.scheme.indices(num_rows, bounds, self.num_segments, 1, self.train, rng)

    def __getitem__(self, idx: int) -> dict:
        inst = self.base.instances[idx]
        rows = self.snippet_rows(idx)
        if self._memory is None:
            feats = self.base.reader.read(inst.key, self.base.modality, rows=rows)  # only the K rows
        else:
            if idx not in self._memory:
                self._memory[idx] = self.base.reader.read(inst.key, self.base.modality)
            feats = self._memory[idx][rows]
        return {"features": torch.from_numpy(feats), "label": int(inst.action), "key": inst.key}
