"""The interface every parsing method offers.

A parser is built from a config (its class's commented ``DEFAULTS`` updated with overrides),
fitted on a training split (a ``tapos.data.FeatureDataset``: features, boundaries, action labels)
and predicts, for one instance's ``(T, D)`` features, the rows where a new sub-action starts;
``predict`` maps them to annotation frames. ``state()`` is a plain dict of tensors, numbers and
strings (saved in ``model.pt`` and loadable with ``torch.load(..., weights_only=True)``).

Three building blocks, which a method combines:

- ``Parser``: the interface (fit, boundary_rows, predict, tune "auto" options, state);
- ``LabellingParser``: boundaries are where a per-row label changes, after merging runs shorter
  than ``min_segment``; a method writes only ``frame_labels`` (k-means, ISBA, CTM, TransParser);
- ``TorchParser``: an ``nn.Module`` trained by gradient descent in epochs (the one training loop,
  ``tapos.data.machinery.training``), the best epoch on the selection split kept; a method writes
  ``build_model`` and ``losses``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from tapos.data.clock import row_boundary_frames
from tapos.data.machinery.dataset import feature_stats
from tapos.data.machinery.training import Training, train_epochs
from tapos.data.errors import TaposError
from tapos.data.options import apply_options

from .batches import collate
from .segments import change_points, merge_short_segments
from .validation import validation_scores


@dataclass
class FitOptions:
    """How to fit (not what): shared by every method."""

    epochs: Optional[int] = None    # None: the method's default
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    num_workers: int = 0            # DataLoader workers reading the HDF5 cache
    on_epoch: Optional[Callable] = None  # called with each history row


class Parser:
    """Base class. Subclasses set ``name``, ``DEFAULTS`` and implement ``fit`` and ``boundary_rows``."""

    name = ""
    # What the method reads of the training annotations besides the features: "none" (nothing:
    # label-free; its selection default is --select-on none, see tapos.parse.run), "class labels"
    # or "boundaries" (any use of the sub-action boundaries, their number included).
    supervision = "boundaries"
    # Options that make the method read more than ``supervision`` says when set to true, with what
    # they read: {"use_class": "class labels"} (tapos-parse methods lists them after the supervision)
    SUPERVISION_OPTIONS: dict = {}
    DEFAULTS: dict = {}
    # Post-processing options that may be "auto": chosen on the selection split (the ``val``
    # argument of fit: dev by default, see tapos.data.selection) after fitting, among these
    # candidates (the first is used when there is no selection split).
    TUNABLE: dict = {}
    normalize = True  # standardize features with training statistics before the method sees them
    reads_features = True  # False for a content-free reference (prior): tests and tables treat it as chance
    has_epochs = False  # whether FitOptions.epochs means anything to the method
    # Named sets of option values (``preset="paper"``: the method as its paper describes it, where
    # our defaults deviate); applied over DEFAULTS, under explicit options.
    PRESETS: dict = {}

    def __init__(self, preset: Optional[str] = None, **config):
        if preset not in (None, "default") and preset not in self.PRESETS:
            raise TaposError(f"{self.name}: unknown preset {preset!r} (known: {', '.join(['default', *self.PRESETS])})")
        preset_values = self.PRESETS.get(preset, {})
        self.preset = preset or "default"
        self.config = apply_options(self.DEFAULTS, {**preset_values, **config}, self.name)
        self.dim: Optional[int] = None
        self.num_classes: Optional[int] = None
        self.mean: Optional[np.ndarray] = None
        self.std: Optional[np.ndarray] = None
        self.rate: Optional[float] = None  # rows per second of the training cache (lengths in seconds)

    # --- fitting -------------------------------------------------------------------------
    def prepare(self, train, opts: FitOptions) -> None:
        """Record the input dimension, the classes, the normalization statistics and the rows' rate."""
        self.dim = train.dim
        self.rate = rows_per_second(train)
        self.num_classes = max(max(int(i.action) for i in train.instances) + 1, 1)
        if self.normalize:  # a property of the data, not of the seed (members of an ensemble share it)
            self.mean, self.std = feature_stats(train)

    def fit(self, train, val=None, opts: Optional[FitOptions] = None) -> list:
        """Fit on ``train``; return the history (one dict per epoch)."""
        raise NotImplementedError

    def option(self, key):
        """A config value; an untuned ``"auto"`` reads as its first candidate."""
        value = self.config[key]
        return self.TUNABLE[key][0] if value == "auto" else value

    def relevant_options(self) -> tuple:
        """The TUNABLE options that change this configuration's boundaries (all of them, unless a
        method reads some only in one mode): ``tune`` scores only these."""
        return tuple(self.TUNABLE)

    def tune(self, val) -> dict:
        """Replace every ``"auto"`` option by the candidate with the best avg F1 on ``val``, the
        selection split (relative thresholds); returns ``{option: (chosen, validation scores with it)}``."""
        chosen = {}
        relevant = self.relevant_options()
        for key, candidates in self.TUNABLE.items():
            if self.config.get(key) != "auto":
                continue
            if val is None or key not in relevant:  # nothing to choose on, or nothing it would change
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

    def predict(self, features: np.ndarray, frames=None, instance=None) -> np.ndarray:
        """Boundaries of one instance in annotation frames (``frames[t]``: row t's position in
        annotation frames, :func:`tapos.data.clock.row_frames`; default: row t is frame t),
        placed by the clock's rule (:func:`tapos.data.clock.row_boundary_frames`: halfway
        between the rows either side). Instances of fewer than 2 rows have none. ``instance``:
        its annotation record when there is one; no method reads it except the content-free
        ``prior`` (its length in frames and, with ``count=class-median``, its class)."""
        x = self.transform(features)
        if frames is None:
            frames = np.arange(x.shape[0], dtype=np.float64)
        if x.shape[0] < 2:
            return np.zeros(0, dtype=np.float64)
        return row_boundary_frames(self.boundary_rows(x), frames)

    def smooth(self, labels: np.ndarray) -> np.ndarray:
        """Per-row labels after the method's own smoothing (none here; see LabellingParser)."""
        return labels

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
            "preset": self.preset,
            "config": dict(self.config),
            "dim": self.dim,
            "num_classes": self.num_classes,
            "mean": None if self.mean is None else torch.from_numpy(np.asarray(self.mean)),
            "std": None if self.std is None else torch.from_numpy(np.asarray(self.std)),
            "rate": self.rate,
            "extra": self.extra_state(),
        }

    @classmethod
    def from_state(cls, state: dict) -> "Parser":
        parser = cls(**state["config"])
        parser.preset = state.get("preset", "default")
        parser.dim = state["dim"]
        parser.num_classes = state["num_classes"]
        parser.mean = None if state["mean"] is None else state["mean"].numpy()
        parser.std = None if state["std"] is None else state["std"].numpy()
        parser.rate = state.get("rate")  # absent from models saved before lengths in seconds
        parser.load_extra_state(state["extra"])
        return parser


def rows_per_second(dataset) -> Optional[float]:
    """The median rows per second of a training split's instances (their cache's ``fps``: the video's
    rate over the extraction stride), which turns lengths in seconds into rows; None for a split
    without a feature cache."""
    reader = getattr(dataset, "reader", None)
    if reader is None or not len(dataset.instances):
        return None
    return float(np.median([reader.info(i.key).fps for i in dataset.instances]))


def fit_once(parser: Parser, train, val, opts: FitOptions, fit_fn) -> list:
    """For methods without epochs: fit, then one validation row."""
    t0 = time.time()
    fit_fn()
    row = {"epoch": 1, "seconds": round(time.time() - t0, 3)}
    tuned = parser.tune(val)
    scores = None
    for key, (value, scores) in tuned.items():
        row[f"tuned_{key}"] = value
    if val is not None:
        row.update(scores or validation_scores(parser, val))  # tuning already scored the choice
    if opts.on_epoch:
        opts.on_epoch(row)
    return [row]


class LabellingParser(Parser):
    """A parser that labels every row; a new sub-action starts where the label changes, after
    runs shorter than ``min_segment`` rows are merged into a neighbour. Subclasses implement
    ``frame_labels`` and add ``LABELLING_DEFAULTS`` to their ``DEFAULTS``."""

    LABELLING_DEFAULTS = {
        "min_segment": "auto",  # merge label runs shorter than this (rows); 1 = off (the paper's methods);
                                # "auto": chosen on the selection split among TUNABLE
    }
    TUNABLE = {"min_segment": (1, 2, 3, 4, 6, 8)}  # 1 first: without a selection split, no smoothing

    def frame_labels(self, x: np.ndarray) -> np.ndarray:
        """One integer label per row of normalized features ``x (T, D)``."""
        raise NotImplementedError

    def smooth(self, labels: np.ndarray) -> np.ndarray:
        return merge_short_segments(labels, int(self.option("min_segment")))

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        return change_points(self.smooth(self.frame_labels(x)))


class TorchParser(Parser):
    """A parser whose model is an ``nn.Module`` trained by gradient descent on batches of
    instances. Subclasses implement ``build_model``, ``losses`` and ``boundary_rows`` (or, as
    LabellingParsers, ``frame_labels``), running the model with :meth:`infer`."""

    has_epochs = True

    DEFAULTS = {
        "epochs": 20,          # passes over the training split; the best on the selection split is kept
        "batch_size": 16,      # instances per step (their frames are concatenated)
        "lr": 1e-3,            # AdamW learning rate
        "weight_decay": 1e-4,  # AdamW weight decay
        "grad_clip": 5.0,      # max gradient norm
    }

    def __init__(self, **config):
        super().__init__(**config)
        self.model: Optional[torch.nn.Module] = None

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def losses(self, model, batch) -> dict:
        """Scalar loss terms for a collated batch; ``"loss"`` is minimized."""
        raise NotImplementedError

    def start_epoch(self, epoch: int, epochs: int, train) -> None:
        """Hook before each epoch (ISBA re-estimates its pseudo boundaries here)."""

    def fit(self, train, val=None, opts: Optional[FitOptions] = None) -> list:
        opts = opts or FitOptions()
        torch.manual_seed(opts.seed)
        np.random.seed(opts.seed)
        self.prepare(train, opts)
        self.model = self.build_model().to(opts.device)
        optim = torch.optim.AdamW(self.model.parameters(), lr=self.config["lr"],
                                  weight_decay=self.config["weight_decay"])
        gen = torch.Generator().manual_seed(opts.seed)
        mean, std = self.mean, self.std
        loader = DataLoader(train, batch_size=self.config["batch_size"], shuffle=True, generator=gen,
                            num_workers=opts.num_workers, collate_fn=lambda items: collate(items, mean, std))
        epochs = opts.epochs or self.config["epochs"]
        auto = {k: self.config[k] for k in self.TUNABLE if self.config.get(k) == "auto"}
        for k in auto:  # epochs are compared with the first candidate (the paper's setting)
            self.config[k] = self.TUNABLE[k][0]
        history = train_epochs(Training(
            self.model, optim, epochs, batches=lambda epoch: loader,
            losses=lambda batch: self.losses(self.model, batch), device=opts.device, clip=self.config["grad_clip"],
            before_epoch=lambda epoch: self.start_epoch(epoch, epochs, train),
            evaluate=(lambda: validation_scores(self, val)) if val is not None else None,
            select="val_f1_rel",  # without a selection split: the last epoch
            on_epoch=opts.on_epoch, desc=self.name, progress=opts.progress, show=("val_f1_rel",)))
        self.model.to("cpu").eval()
        self.config.update(auto)
        tuned = self.tune(val)
        if tuned and history:
            best_row = next(r for r in reversed(history) if r.get("best"))
            for key, (value, scores) in tuned.items():
                best_row[f"tuned_{key}"] = value
            best_row.update({f"tuned_{k}": v for k, v in scores.items()})  # scores of the last option tuned
        return history

    def as_input(self, x: np.ndarray) -> torch.Tensor:
        """Normalized rows ``(T, D)`` as a tensor on the model's device."""
        return torch.from_numpy(np.ascontiguousarray(x)).to(next(self.model.parameters()).device)

    def infer(self, x: np.ndarray, model: Optional[torch.nn.Module] = None):
        """The output of the model (or of ``model``, on the same device) for normalized rows
        ``x (T, D)``, without gradients."""
        with torch.inference_mode():
            return (model or self.model)(self.as_input(x))

    def extra_state(self) -> dict:
        return {"model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}}

    def load_extra_state(self, state: dict) -> None:
        self.model = self.build_model()
        self.model.load_state_dict(state["model"])
        self.model.eval()
