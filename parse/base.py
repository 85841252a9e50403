"""The interface every parsing method offers, and the batching they share.

A parser is built from a config (its class's commented ``DEFAULTS`` updated with overrides),
fitted on a training split (a ``tapos.data.FeatureDataset``: features, boundaries, action labels)
and predicts, for one instance's ``(T, D)`` features, the rows where a new sub-action starts;
``predict`` maps them to annotation frames. ``state()`` is a plain dict of tensors, numbers and
strings (saved in ``model.pt`` and loadable with ``torch.load(..., weights_only=True)``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from tapos.data.clock import row_boundary_frames
from tapos.data.dataset import feature_stats
from tapos.data.errors import TaposError
from tapos.data.options import apply_options

from .segments import merge_short_segments



@dataclass
class FitOptions:
    """How to fit (not what): shared by every method."""

    epochs: Optional[int] = None    # None: the method's default
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    num_workers: int = 0            # DataLoader workers reading the HDF5 cache
    on_epoch: Optional[Callable] = None  # called with each history row


def collate(items: list, mean: Optional[np.ndarray] = None, std: Optional[np.ndarray] = None) -> dict:
    """Instances concatenated along time (no padding: the SPS units and losses work per frame
    and per instance). Rows are normalized with ``mean``/``std`` when given.

    Returns ``x (N, D)``, ``inst (N,)`` instance of each row, ``seg (N,)`` segment of each row
    within its instance, ``lengths (B,)``, ``offsets (B + 1,)``, ``actions (B,)``, and per instance
    ``row_boundaries``, ``frames`` and ``keys``.
    """
    xs, insts, segs = [], [], []
    for i, it in enumerate(items):
        x = it["features"]
        T = x.shape[0]
        xs.append(x)
        insts.append(torch.full((T,), i, dtype=torch.long))
        segs.append(torch.searchsorted(it["row_boundaries"], torch.arange(T), right=True))
    x = torch.cat(xs)
    if mean is not None:
        x = (x - torch.as_tensor(mean, dtype=x.dtype)) / torch.as_tensor(std, dtype=x.dtype)
    lengths = torch.tensor([it["features"].shape[0] for it in items], dtype=torch.long)
    return {
        "x": x,
        "inst": torch.cat(insts),
        "seg": torch.cat(segs),
        "lengths": lengths,
        "offsets": torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]),
        "actions": torch.tensor([it["action"] for it in items], dtype=torch.long),
        "row_boundaries": [it["row_boundaries"] for it in items],
        "frames": [it["frames"] for it in items],
        "keys": [it["key"] for it in items],
    }


class Parser:
    """Base class. Subclasses set ``name``, ``DEFAULTS`` and implement ``fit`` and ``boundary_rows``."""

    name = ""
    DEFAULTS: dict = {}
    # Post-processing options that may be "auto": chosen on the val split after fitting, among
    # these candidates (the first is used when there is no val split).
    TUNABLE: dict = {}
    normalize = True  # standardize features with training statistics before the method sees them

    def __init__(self, **config):
        self.config = apply_options(self.DEFAULTS, config, self.name)
        self.dim: Optional[int] = None
        self.num_classes: Optional[int] = None
        self.mean: Optional[np.ndarray] = None
        self.std: Optional[np.ndarray] = None

    # --- fitting -------------------------------------------------------------------------
    def prepare(self, train, opts: FitOptions) -> None:
        """Record the input dimension, the classes and the normalization statistics."""
        self.dim = train.dim
        self.num_classes = max(max(int(i.action) for i in train.instances) + 1, 1)
        if self.normalize:
            self.mean, self.std = feature_stats(train, seed=opts.seed)

    def fit(self, train, val=None, opts: Optional[FitOptions] = None) -> list:
        """Fit on ``train``; return the history (one dict per epoch)."""
        raise NotImplementedError

    def option(self, key):
        """A config value; an untuned ``"auto"`` reads as its first candidate."""
        value = self.config[key]
        return self.TUNABLE[key][0] if value == "auto" else value

    def tune(self, val) -> dict:
        """Replace every ``"auto"`` option by the candidate with the best val avg F1 (relative
        thresholds); returns ``{option: (chosen, validation scores with it)}``."""
        from .training import validation_scores

        chosen = {}
        for key, candidates in self.TUNABLE.items():
            if self.config.get(key) != "auto":
                continue
            if val is None:
                self.config[key] = candidates[0]
                continue
            scores = {}
            for c in candidates:
                self.config[key] = c
                scores[c] = validation_scores(self, val)
            self.config[key] = max(candidates, key=lambda c: scores[c]["val_f1_rel"])  # first of the best
            chosen[key] = (self.config[key], scores[self.config[key]])
        return chosen

    # --- inference -----------------------------------------------------------------------
    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.dim is not None and (x.ndim != 2 or x.shape[1] != self.dim):
            raise TaposError(f"{self.name}: features have shape {x.shape}, the model expects (T, {self.dim})")
        if self.normalize and self.mean is not None:
            x = (x - self.mean) / self.std
        return x

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        """Rows (1..T-1) where a new sub-action starts, for normalized features ``x (T, D)``."""
        raise NotImplementedError

    def predict(self, features: np.ndarray, frames=None) -> np.ndarray:
        """Boundaries of one instance in annotation frames (``frames[t]``: row t's position in
        annotation frames, :func:`tapos.data.clock.row_frames`; default: row t is frame t),
        placed by the clock's rule (:func:`tapos.data.clock.row_boundary_frames`: halfway
        between the rows either side). Instances of fewer than 2 rows have none."""
        x = self.transform(features)
        if frames is None:
            frames = np.arange(x.shape[0], dtype=np.float64)
        if x.shape[0] < 2:
            return np.zeros(0, dtype=np.float64)
        return row_boundary_frames(self.boundary_rows(x), frames)

    def smooth(self, labels: np.ndarray) -> np.ndarray:
        """Per-row labels with runs shorter than the ``min_segment`` option merged into a
        neighbour (unchanged for a method without that option)."""
        if "min_segment" not in self.config:
            return labels
        return merge_short_segments(labels, int(self.option("min_segment")))

    # --- analysis (optional: methods with learned sub-action patterns) -----------------------
    def patterns(self, features: np.ndarray) -> Optional[np.ndarray]:
        """Each row's response ``(T, m)`` to the method's m learned sub-action patterns (rows sum
        to 1; the argmax is the row's pattern), or None for a method without patterns."""
        return None

    def pattern_labels(self, features: np.ndarray, responses: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """Each row's pattern after the method's own smoothing: the labels its boundaries are the
        changes of (None without patterns). ``responses``: ``patterns(features)`` when known."""
        resp = self.patterns(features) if responses is None else responses
        return None if resp is None else self.smooth(resp.argmax(1))

    def class_logits(self, features: np.ndarray) -> Optional[np.ndarray]:
        """Per-row action-class logits ``(T, C)`` whose mean over any span classifies that span
        (TransParser's global-loss classifier), or None for a method without a classifier."""
        return None

    # --- persistence ---------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def state(self) -> dict:
        return {
            "method": self.name,
            "config": dict(self.config),
            "dim": self.dim,
            "num_classes": self.num_classes,
            "mean": None if self.mean is None else torch.from_numpy(np.asarray(self.mean)),
            "std": None if self.std is None else torch.from_numpy(np.asarray(self.std)),
            "extra": self.extra_state(),
        }

    @classmethod
    def from_state(cls, state: dict) -> "Parser":
        parser = cls(**state["config"])
        parser.dim = state["dim"]
        parser.num_classes = state["num_classes"]
        parser.mean = None if state["mean"] is None else state["mean"].numpy()
        parser.std = None if state["std"] is None else state["std"].numpy()
        parser.load_extra_state(state["extra"])
        return parser
