"""The library behind ``tapos-tsn``: train a TSN on the ``train`` subset with one sampling scheme,
evaluate on ``val`` or ``test`` (per modality and their late fusion), write the model directory."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import click
import numpy as np
import torch

from tapos.data.annotations import load_annotations
from tapos.data.machinery.checkpoints import load_checkpoint, save_checkpoint
from tapos.data.machinery.dataset import feature_stats
from tapos.data.machinery.training import Training, train_epochs
from tapos.data.errors import TaposError
from tapos.data.features import MODALITY_CHOICES, FeatureReader, parse_modality
from tapos.data.io import CsvLog, atomic_path, atomic_write_text
from tapos.data.layouts import require_classes
from tapos.data.machinery.cli_utils import RegistryChoice
from tapos.data.options import Config, apply_options, option
from tapos.data.predictions import load_predictions
from tapos.data.version import __version__

from .data import SnippetDataset
from .metrics import fuse, scores_table
from .model import FeatureTSN, predict_scores
from .schemes import SAMPLINGS

FORMAT = "tapos-tsn/1"

# One defaults dict for the feature path; every field is a --set option of tapos-tsn.
DEFAULTS = {
    "segments": 3,          # K snippets per instance in training (TSN's default)
    "test_segments": None,  # snippets per instance at test (None: the same K)
    "epochs": 40,
    "batch_size": 32,
    "lr": 1e-3,             # Adam on cached features (TSN's SGD recipe is for fine-tuning the CNN)
    "weight_decay": 5e-4,   # as TSN
    "dropout": 0.5,         # before the classifier (TSN uses 0.8 RGB / 0.7 flow when fine-tuning the CNN)
    "fusion": {"rgb": 1.0, "flow": 1.5},  # late fusion weights of the softmax scores (TSN's 1:1.5)
}
INPUTS = ("features", "frames")  # a head on cached features, or BNInception fine-tuned on frames
EVAL_SPLITS = ("val", "test")    # what a run may evaluate and report


@dataclass(frozen=True)
class TsnConfig(Config):
    """How :func:`train` runs (``tapos-tsn`` shows these); the TSN's own options are :data:`DEFAULTS`
    (``FRAME_DEFAULTS`` with ``--input frames``), given as ``overrides``."""

    WHAT = "tapos-tsn"

    # a head on cached features, or BNInception fine-tuned on frames (one of INPUTS)
    input: str = option("features", "features: a head on cached features (fast, CPU); frames: fine-tune BNInception "
                        "end to end on video frames (GPUs; torchrun for several).", type=click.Choice(INPUTS))
    # uniform (TSN), aligned (annotated sub-actions) or parsed (predicted): a registered scheme
    sampling: str = option("uniform", "; ".join(f"{s.name}: {s.summary}" for s in SAMPLINGS.values()) + ".",
                           type=RegistryChoice(SAMPLINGS))
    # one TSN per modality, fused late; None: what the cache holds (with --input frames: rgb+flow)
    modality: Optional[str] = option(None, "rgb+flow trains both and fuses their scores 1:1.5. Default: what the "
                                     "cache holds (rgb+flow when both).", type=click.Choice(MODALITY_CHOICES),
                                     show_default=False)
    # nothing is chosen on the evaluated split: its per-epoch top-1 is only logged
    split: str = option("val", "The split evaluated and reported (nothing is chosen on it; the last epoch is "
                        "reported).", type=click.Choice(EVAL_SPLITS))
    seed: int = option(0, "", type=int)
    device: str = option("cpu", "")
    label: Optional[str] = option(None, "Row name in the results table (default: the sampling, or parsed (<file "
                                  "stem>) for predicted sub-actions).", show_default=False)
    overrides: Optional[dict] = option(None, "Options over DEFAULTS (FRAME_DEFAULTS with --input frames).", cli=False)
    progress: bool = option(True, "A bar per epoch on a terminal, one line per epoch into a log file.",
                            flag="--progress/--no-progress")


# What a run trains on unless told otherwise (the fields of TsnConfig)
RUN_DEFAULTS = TsnConfig.defaults()


def _datasets(features, ann, modality, sampling, boundaries, cfg, seed, split):
    train = SnippetDataset(features, ann, "train", modality, sampling, cfg["segments"], True, boundaries, seed)
    val = SnippetDataset(features, ann, split, modality, sampling, cfg["test_segments"] or cfg["segments"], False,
                         boundaries)
    return train, val


def _loader(ds, batch_size, shuffle, seed):
    g = torch.Generator().manual_seed(seed)
    collate = lambda items: (torch.stack([i["features"] for i in items]),  # noqa: E731
                             torch.tensor([i["label"] for i in items]), [i["key"] for i in items])
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g, collate_fn=collate)


def feature_scores(model, ds, batch_size=64, device="cpu") -> tuple:
    """``(keys, softmax scores (N, C))`` of a feature TSN, in the dataset's order."""
    return predict_scores(model, _loader(ds, batch_size, False, 0), device)


def _fit_one(modality, train, val, num_classes, cfg, seed, device, progress, on_epoch):
    torch.manual_seed(seed)
    mean, std = feature_stats(train.base, seed=seed)
    model = FeatureTSN(len(mean), num_classes, cfg["dropout"])
    model.mean.copy_(torch.from_numpy(mean))
    model.std.copy_(torch.from_numpy(std))
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])

    def val_top1() -> dict:  # logged only: the last epoch is kept (nothing is chosen on the evaluated split)
        _, scores = feature_scores(model, val, device=device)
        return {"val_top1": float((scores.argmax(1) == val.labels).mean())}

    def loss(batch) -> dict:
        x, y, _ = batch
        return {"loss": torch.nn.functional.cross_entropy(model(x), y)}

    train_epochs(Training(
        model, opt, cfg["epochs"], batches=lambda epoch: _loader(train, cfg["batch_size"], True, seed + epoch - 1),
        losses=loss, device=device, weight=lambda batch: len(batch[1]),
        before_epoch=lambda epoch: train.set_epoch(epoch - 1), evaluate=val_top1, row={"modality": modality},
        on_epoch=on_epoch, desc=f"tsn {modality}", progress=progress,
        show=("val_top1",)))
    return model


def train(features, annotations, sampling: str = RUN_DEFAULTS["sampling"],
          modality: Optional[str] = RUN_DEFAULTS["modality"], out_dir=None, boundaries=None, videos=None, **options):
    """Train one TSN per modality on ``train`` and evaluate on the config's ``split`` (val or test);
    the reported numbers are the last epoch's (nothing is selected on the evaluated split).
    ``options`` are :class:`TsnConfig`'s (seed, device, overrides, progress, label, input, split).
    ``input="features"`` trains the head on cached features (``features`` is the cache);
    ``"frames"`` fine-tunes BNInception on the frames of the videos in ``videos`` (under torchrun,
    on every process; rank 0 evaluates). Returns the results dict (also written to ``out_dir``);
    None on ranks other than 0."""
    from .finetune import FRAME_DEFAULTS

    run = TsnConfig.of(options, sampling=sampling, modality=modality)
    input, split, seed = run.input, run.split, run.seed
    cfg = apply_options(FRAME_DEFAULTS if input == "frames" else DEFAULTS, run.overrides, "TSN")
    if input == "frames" and videos is None:
        raise TaposError("--input frames needs --videos DIR")
    ann = load_annotations(annotations)
    require_classes(ann, "tapos-tsn")
    if split not in EVAL_SPLITS:
        raise TaposError(f"tapos-tsn evaluates {' or '.join(EVAL_SPLITS)}, not {split!r}")
    if modality is None:
        modality = FeatureReader(features).default_modality() if input == "features" else "rgb+flow"
    mods = parse_modality(modality)
    if isinstance(boundaries, (str, Path)):
        boundaries = load_predictions(boundaries)
    num_classes = max(ann.actions) + 1
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    on_epoch = CsvLog(out / "log.csv" if out else None)
    if input == "frames":
        models, keys, val_scores, labels = _train_frames(videos, ann, mods, boundaries, cfg, num_classes, run,
                                                         on_epoch)
        if models is None:
            return None
        dims = {m: 1024 for m in mods}
    else:
        models, val_scores, keys, labels = {}, {}, None, None
        for k, mod in enumerate(mods):
            tr, va = _datasets(features, ann, mod, sampling, boundaries, cfg, seed, split)
            models[mod] = _fit_one(mod, tr, va, num_classes, cfg, seed + k, run.device, run.progress, on_epoch)
            keys, val_scores[mod] = feature_scores(models[mod], va, device=run.device)
            labels = va.labels
        dims = {m: int(models[m].fc.in_features) for m in mods}
    config = {"input": input, "sampling": sampling, "label": run.label or sampling, "modality": "+".join(mods),
              "options": cfg, "num_classes": num_classes, "dim": dims, "features": str(features),
              "videos": str(videos) if videos else None, "annotations": str(ann.path), "seed": seed, "split": split,
              "tool_version": __version__}
    results = evaluate_scores(val_scores, labels, cfg["fusion"])
    if out:
        save(out, models, config)
        write_results(out, config, results, keys, val_scores, labels, on_epoch.rows)
    return results


def _train_frames(videos, ann, mods, boundaries, cfg, num_classes, run: TsnConfig, on_epoch):
    from tapos.data.machinery.distributed import Distributed

    from .finetune import fit, frame_scores
    from .frames import FrameSnippets

    sampling, seed, split = run.sampling, run.seed, run.split
    dist = Distributed(run.device)
    models, val_scores, keys, labels = {}, {}, None, None
    try:
        for k, mod in enumerate(mods):
            tr = FrameSnippets(videos, ann.path, "train", mod, sampling, cfg["segments"], True, boundaries, seed,
                               cfg["flow"], cfg["flow_options"])
            models[mod] = fit(mod, tr, num_classes, cfg, seed + k, dist, run.progress, on_epoch)
            if dist.rank == 0:
                va = FrameSnippets(videos, ann.path, split, mod, sampling, cfg["test_segments"], False, boundaries,
                                   flow_method=cfg["flow"], flow_options=cfg["flow_options"])
                keys, val_scores[mod] = frame_scores(models[mod], va, dist.device, cfg["workers"])
                labels = va.labels
    finally:
        dist.close()
    if dist.rank != 0:
        return None, None, None, None
    return models, keys, val_scores, labels


def evaluate_scores(val_scores: dict, labels: np.ndarray, weights: dict) -> dict:
    """Top-1 and mean class accuracy per modality and, with two, for their late fusion."""
    from .metrics import accuracy

    res = {m: accuracy(s, labels) for m, s in val_scores.items()}
    if len(val_scores) > 1:
        res["+".join(val_scores)] = accuracy(fuse(val_scores, weights), labels)
    return res


def save(out: Path, models: dict, config: dict) -> None:
    save_checkpoint(out, FORMAT, {"config": json.dumps(config),
                                  "models": {m: model.state_dict() for m, model in models.items()}}, config)


def load(model_dir) -> tuple:
    """``(models, config)`` from a directory written by ``tapos-tsn`` (loaded with weights_only)."""
    blob = load_checkpoint(model_dir, FORMAT, "tapos-tsn model", "tapos-tsn")
    config = json.loads(blob["config"])
    models = {}
    for mod, state in blob["models"].items():
        if config.get("input") == "frames":
            from .finetune import FrameTSN, per_modality

            model = FrameTSN(mod, config["num_classes"], per_modality(config["options"]["dropout"], mod),
                             "random", config["options"]["partial_bn"])
        else:
            model = FeatureTSN(config["dim"][mod], config["num_classes"], config["options"]["dropout"])
        model.load_state_dict(state)
        models[mod] = model.eval()
    return models, config


def evaluate(model_dir, features, annotations, boundaries=None, out_dir=None, videos=None,
             split: str = RUN_DEFAULTS["split"]) -> dict:
    """Re-evaluate a trained model on ``split`` (``--eval-only``; frame models need ``videos``)."""
    models, config = load(model_dir)
    config = {**config, "split": split}
    ann = load_annotations(annotations)
    require_classes(ann, "tapos-tsn")
    if isinstance(boundaries, (str, Path)):
        boundaries = load_predictions(boundaries)
    cfg = config["options"]
    frames = config.get("input") == "frames"
    if frames and videos is None:
        raise TaposError(f"{model_dir}: a model trained on frames is evaluated on videos: give --videos DIR")
    val_scores, keys, labels = {}, None, None
    for mod, model in models.items():
        if frames:
            from .finetune import frame_scores
            from .frames import FrameSnippets

            ds = FrameSnippets(videos, ann.path, split, mod, config["sampling"], cfg["test_segments"], False,
                               boundaries, flow_method=cfg["flow"], flow_options=cfg.get("flow_options"))
            keys, val_scores[mod] = frame_scores(model, ds, "cpu")
        else:
            ds = SnippetDataset(features, ann, split, mod, config["sampling"], cfg["test_segments"] or cfg["segments"],
                                False, boundaries)
            keys, val_scores[mod] = feature_scores(model, ds)
        labels = ds.labels
        if model.fc.out_features <= labels.max():
            raise TaposError(f"{annotations}: class {labels.max()} is beyond the model's {model.fc.out_features}")
    results = evaluate_scores(val_scores, labels, cfg["fusion"])
    if out_dir:
        write_results(Path(out_dir), config, results, keys, val_scores, labels, None)
    return results


def write_results(out: Path, config: dict, results: dict, keys, val_scores, labels, history) -> None:
    from .metrics import plot_confusion

    atomic_write_text(out / "results.json", json.dumps({"config": config, "results": results}, indent=1))
    table = scores_table({config["label"]: results})
    atomic_write_text(out / "results.csv", table.to_csv())
    atomic_write_text(out / "results.md", table.to_markdown(floatfmt=".2f") + "\n")
    best = "+".join(val_scores) if len(val_scores) > 1 else next(iter(val_scores))
    scores = fuse(val_scores, config["options"]["fusion"]) if len(val_scores) > 1 else val_scores[best]
    split = config.get("split", "val")
    with atomic_path(out / f"{split}_scores.npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, keys=np.asarray(keys), labels=labels, **{m: s for m, s in val_scores.items()})
    plot_confusion(scores, labels, config["num_classes"], out / "confusion.png",
                   f"TSN {config['label']} ({best}) on {split}")
    if history:
        from .metrics import plot_history

        plot_history(history, out / "training.png")
