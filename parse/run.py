"""The library behind ``tapos-parse``: train a method on a cache and write its model directory,
predict boundaries for a split or a whole cache."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import click
import numpy as np

from tapos.data.annotations import load_annotations
from tapos.data.clock import frames_to_seconds, row_frames
from tapos.data.machinery.dataset import FeatureDataset
from tapos.data.errors import TaposError
from tapos.data.features import MODALITY_CHOICES, FeatureReader, parse_modality
from tapos.data.io import CsvLog
from tapos.data.machinery.plotting import pyplot, save_figure
from tapos.data.machinery.progress import track
from tapos.data.options import Config, option
from tapos.data.selection import DEV_FRACTION, SELECT_ON, selection

from .base import FitOptions
from .checkpoint import load_model, save_model
from .registry import get_parser


@dataclass(frozen=True)
class TrainConfig(Config):
    """How :func:`train` fits a method (``tapos-parse train`` shows these; the method's own
    options are its class's ``DEFAULTS``, given as ``overrides``)."""

    WHAT = "training"

    modality: Optional[str] = option(None, "Default: what the cache holds (rgb+flow when both).",
                                     type=click.Choice(MODALITY_CHOICES))
    select_on: Optional[str] = option(  # None: default_select_on(method)
        None, "Where the epoch and 'auto' options are chosen: dev (whole videos carved from train; val and test are "
        "never read), val (the paper's setup: then do not report val) or none (last epoch, first candidates). "
        "Default: none for label-free methods (supervision none in tapos-parse methods), dev for the others.",
        type=click.Choice(SELECT_ON))
    dev_fraction: float = option(DEV_FRACTION, "With --select-on dev: share of the training instances held out.",
                                 type=click.FloatRange(0, 1, min_open=True, max_open=True))
    epochs: Optional[int] = option(None, "Default: the method's own.", type=click.IntRange(1))
    seed: int = option(0, "Training is deterministic on CPU for a seed.")
    device: str = option("cpu", "cpu, cuda, cuda:1, ...")
    num_workers: int = option(0, "DataLoader processes reading the cache.", flag="--workers", type=click.IntRange(0))
    overrides: Optional[dict] = option(None, "The method's options over its DEFAULTS (tapos-parse: --preset, --set).",
                                       cli=False)
    progress: bool = option(True, "A bar per epoch on a terminal, one line per epoch into a log file.",
                            flag="--progress/--no-progress")


# What train and predict do unless told otherwise (tapos-parse shows these)
RUN_DEFAULTS = {
    **TrainConfig.defaults(),
    "split": "val",          # instances predicted (one of tapos.data.SPLITS)
}


def default_select_on(method: str) -> str:
    """The selection split of ``method`` when none is asked for: a label-free method reads no
    boundaries by default, so it selects on nothing ("none"); the others on dev."""
    from .registry import PARSERS

    cls = PARSERS.get(method)
    return "none" if cls is not None and cls.supervision == "none" else "dev"


def train(method: str, features, annotations, out_dir=None, config: Optional[TrainConfig] = None, **options):
    """Fit ``method`` on the ``train`` subset, choosing the epoch and every ``"auto"`` option on
    the selection split (``select_on``: a dev split carved from train by default, so that val
    and test are never read; none for label-free methods, :func:`default_select_on`).
    ``config`` and/or keyword ``options``: :class:`TrainConfig` (``seed=1, overrides={...}``).
    With ``out_dir``: ``config.json`` (which records the selection), ``model.pt``, ``log.csv``
    (written after every epoch; its ``val_*`` columns are scores on the selection split) and
    ``training.png``. Returns ``(parser, history)``."""
    config = TrainConfig.of(config, **options)
    ann = load_annotations(annotations)
    reader = FeatureReader(features)
    modality = "+".join(parse_modality(config.modality or reader.default_modality()))
    sel = selection(ann, config.select_on or default_select_on(method), config.dev_fraction)
    train_ds = FeatureDataset(reader, sel.fit, "all", modality)
    val_ds = FeatureDataset(reader, sel.select, "all", modality) if sel.select is not None else None
    parser = get_parser(method, **(config.overrides or {}))
    if config.epochs is not None and not parser.has_epochs:
        raise TaposError(f"{method} is fitted without epochs; drop --epochs (its options: tapos-parse methods)")
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    log = CsvLog(out / "log.csv" if out else None)
    history = log.rows
    parser.fit(train_ds, val_ds, FitOptions(epochs=config.epochs, seed=config.seed, device=config.device,
                                            progress=config.progress, num_workers=config.num_workers, on_epoch=log))
    if out:
        log.write()  # tuning (options set to "auto") adds to the best epoch's row after the last epoch
        save_model(parser, out, modality, {"features": str(features), "annotations": str(ann.path),
                                           "seed": config.seed, "epochs": len(history), "selection": sel.record(),
                                           "feature_cache": reader.settings().to_json()})
        plot_history(history, out / "training.png", method, sel.split)
    return parser, history


def plot_history(history: list, path, title: str = "", split: str = "validation") -> Path:
    """Loss terms (left) and F1 / precision / recall on the selection ``split`` (right) per epoch."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = [r["epoch"] for r in history]
    skip = {"epoch", "seconds", "best"}
    loss_keys = [k for k in history[0] if k not in skip and not k.startswith("val_")]
    for k in loss_keys:
        ax1.plot(epochs, [r.get(k, np.nan) for r in history], "o-", label=k, ms=3)
    ax1.set_xlabel("epoch")
    ax1.set_title(f"{title} training losses".strip())
    if loss_keys:
        ax1.legend(fontsize=8)
    for k, style in (("val_f1_rel", "o-"), ("val_f1_abs", "s-"), ("val_prec_rel", "^--"), ("val_rec_rel", "v--")):
        if k in history[0]:
            ax2.plot(epochs, [r.get(k, np.nan) for r in history], style, label=k.replace("val_", ""), ms=3)
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("epoch")
    ax2.set_title(f"{split} (avg over thresholds)")
    if ax2.lines:  # no selection split (--select-on none): no scores to show
        ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    return save_figure(fig, path)


def predict(model_dir, features, annotations=None, split: str = RUN_DEFAULTS["split"], seconds: bool = False,
            progress: bool = True) -> dict:
    """``{key: boundaries}`` for the instances of ``split`` (with annotations: annotation frames,
    or seconds from the instance start) or for every instance of the cache (without annotations:
    frames of the cached clip, or seconds)."""
    parser, modality = load_model(model_dir)
    reader = FeatureReader(features)
    out = {}
    if annotations is not None:
        ann = load_annotations(annotations)
        ds = FeatureDataset(reader, ann, split, modality)
        for i in track(range(len(ds)), desc="predict", unit="inst", enabled=progress):
            item = ds[i]
            inst = ann[item["key"]]
            frames = parser.predict(item["features"].numpy(), item["frames"].numpy(), inst)
            out[item["key"]] = frames_to_seconds(frames, inst.fps) if seconds else frames
        return out
    keys = reader.keys()
    if not keys:
        raise TaposError(f"{features}: the cache holds no instances")
    for key in track(keys, desc="predict", unit="inst", enabled=progress):
        info = reader.info(key)
        missing = [m for m in parse_modality(modality) if m not in info.dims]
        if missing:
            raise TaposError(f"{features}: instance {key}: no {missing[0]} features (the model uses {modality})")
        frames = parser.predict(reader.read(key, modality), row_frames(reader.timestamps(key), info.frame_rate))
        out[key] = frames_to_seconds(frames, info.frame_rate) if seconds else frames
    return out
