"""The one training loop of tapos: every model trained by gradient descent goes through
:func:`train_epochs` (the torch parsers, the TSN on cached features, the TSN fine-tuned on frames).

A run is described by a :class:`Training`: the model and optimizer the caller built, where each
epoch's batches come from, the loss of a batch, and what happens around an epoch (a hook before
it, a learning-rate schedule after it, an evaluation, the row it logs). The loop owns what every
method needs the same way:

- **epochs**: the model in train mode for the batches, in eval mode for the evaluation;
- **device**: each batch's tensors are moved to ``device`` (the model is already there);
- **a step**: zero the gradients, back-propagate ``"loss"``, clip the gradient norm, step;
- **the epoch's row**: the mean of every loss term (weighted by ``weight(batch)``), the seconds
  the epoch took, then the evaluation's numbers; handed to ``on_epoch`` (a ``CsvLog``, say);
- **selection**: with ``select``, the weights of the epoch whose row is highest on that key are kept
  in memory and restored at the end (the row is marked ``"best"``); without it, the last epoch's;
- **progress**: on a terminal, a bar over the epochs and a transient one over each epoch's batches;
  into a log file, one line per epoch (``tapos.data.machinery.progress.track``).

The loop draws no random number of its own: a run is reproduced by the seeds its caller sets
before building the model and the loaders.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import torch

from .progress import track


@dataclass
class Training:
    """One training run: what :func:`train_epochs` trains and how."""

    model: torch.nn.Module                      # on ``device`` already; switched between train and eval
    optimizer: torch.optim.Optimizer
    epochs: int
    batches: Callable[[int], Iterable]          # epoch (1-based) -> that epoch's batches
    losses: Callable[[Any], dict]               # batch (on the device) -> {"loss": minimized, other terms}
    device: str = "cpu"
    weight: Callable[[Any], float] = lambda batch: 1.0  # a batch's weight in the epoch's mean of each term
    clip: Optional[float] = None                # max gradient norm; None or 0: no clipping
    clip_params: Optional[Callable[[], Iterable]] = None  # whose norm is clipped (default: the model's)
    scheduler: Any = None                       # a learning-rate schedule stepped after each epoch
    before_epoch: Optional[Callable[[int], None]] = None  # hook before each epoch (1-based)
    evaluate: Optional[Callable[[], dict]] = None  # after each epoch, model in eval mode: the row's scores
    select: Optional[str] = None                # the row key whose best epoch is kept (missing: the epoch)
    row: dict = field(default_factory=dict)     # fields that start every row (e.g. the modality)
    on_epoch: Optional[Callable[[dict], None]] = None  # called with each finished row
    desc: str = "train"                         # the progress display's name
    progress: bool = True
    show: tuple = ()                            # row keys the progress display shows beside the loss terms


def train_epochs(run: Training) -> list:
    """Train ``run.model`` for ``run.epochs`` epochs; returns the rows (one per epoch). With
    ``run.select`` the model ends with the best epoch's weights, else with the last epoch's."""
    history: list = []
    best, best_state = -math.inf, None
    epochs = track(range(1, run.epochs + 1), desc=run.desc, unit="epoch", enabled=run.progress, every=1)
    for epoch in epochs:
        if run.before_epoch:
            run.before_epoch(epoch)
        means = _train_one_epoch(run, epoch)
        row = {**run.row, "epoch": epoch, **means}
        if run.scheduler is not None:
            run.scheduler.step()
        run.model.eval()
        if run.evaluate:
            row.update(run.evaluate())
        if run.select:
            score = row.get(run.select, epoch)  # without the key (no selection split): the last epoch
            if score > best:
                best, best_state = score, copy.deepcopy(run.model.state_dict())
                row["best"] = True
        history.append(row)
        if run.on_epoch:
            run.on_epoch(row)
        epochs.set_postfix({k: f"{row[k]:.4g}" for k in (*means, *run.show) if k in row and k != "seconds"})
    if best_state is not None:
        run.model.load_state_dict(best_state)
    return history


def _train_one_epoch(run: Training, epoch: int) -> dict:
    """One pass over the epoch's batches; the weighted mean of each loss term and the seconds."""
    run.model.train()
    started = time.time()
    sums: dict = {}
    total = 0.0
    batches = track(run.batches(epoch), desc=f"{run.desc} {epoch}/{run.epochs}", unit="batch",
                    enabled=run.progress, leave=False)
    for batch in batches:
        terms = run.losses(to_device(batch, run.device))
        run.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if run.clip:
            params = run.clip_params() if run.clip_params else run.model.parameters()
            torch.nn.utils.clip_grad_norm_(params, run.clip)
        run.optimizer.step()
        w = run.weight(batch)
        total += w
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * w
        batches.set_postfix({k: f"{v / total:.4f}" for k, v in sums.items()})
    batches.close()
    return {**{k: v / (total or 1) for k, v in sums.items()}, "seconds": round(time.time() - started, 3)}


def to_device(batch, device: str):
    """``batch`` with its tensors on ``device``: a tensor, or the tensors directly inside a dict or
    tuple (an instance's list of boundary tensors, keys and frame lists stay on the host, where the
    losses read them). Host memory is copied asynchronously."""
    if device == "cpu":
        return batch
    move = lambda v: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v  # noqa: E731
    if isinstance(batch, dict):
        return {k: move(v) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(move(v) for v in batch)
    return move(batch)
