"""Fitting and validation shared by every method: the torch training loop, prediction over a
split, and the per-epoch validation score (TAPOS protocol)."""
from __future__ import annotations

import copy
import time
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from tapos.evaluate import evaluate_tapos

from .base import FitOptions, Parser, collate


def predict_dataset(parser: Parser, dataset, progress: bool = False) -> dict:
    """``{key: boundaries in annotation frames}`` for every instance of ``dataset``."""
    from tqdm import tqdm

    out = {}
    for i in tqdm(range(len(dataset)), desc="predict", unit="inst", disable=not progress, leave=False):
        item = dataset[i]
        out[item["key"]] = parser.predict(item["features"].numpy(), item["frames"].numpy())
    return out


def validation_scores(parser: Parser, dataset) -> dict:
    """Average F1, precision and recall over the relative and the absolute thresholds."""
    preds = predict_dataset(parser, dataset)
    res = evaluate_tapos({inst.key: inst for inst in dataset.instances}, preds)
    out = {}
    for name, sc in (("rel", res.relative), ("abs", res.absolute)):
        prec, rec, f1 = sc.prf
        out.update({f"val_f1_{name}": float(f1.mean()), f"val_prec_{name}": float(prec.mean()),
                    f"val_rec_{name}": float(rec.mean())})
    out["val_boundaries_per_instance"] = float(np.mean([len(v) for v in preds.values()])) if preds else 0.0
    return out


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


class TorchParser(Parser):
    """A parser whose model is an ``nn.Module`` trained by gradient descent on batches of
    instances. Subclasses implement ``build_model``, ``losses`` and ``model_rows``."""

    DEFAULTS = {
        "epochs": 20,          # passes over the training split; the best epoch on val is kept
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

    def model_rows(self, model, x: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def start_epoch(self, epoch: int, epochs: int, train) -> None:
        """Hook before each epoch (ISBA re-estimates its pseudo boundaries here)."""

    def fit(self, train, val=None, opts: Optional[FitOptions] = None) -> list:
        from tqdm import tqdm

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
        history, best, best_state = [], -1.0, None
        auto = {k: self.config[k] for k in self.TUNABLE if self.config.get(k) == "auto"}
        for k in auto:  # epochs are compared with the first candidate (the paper's setting)
            self.config[k] = self.TUNABLE[k][0]
        for epoch in range(1, epochs + 1):
            self.start_epoch(epoch, epochs, train)
            self.model.train()
            t0 = time.time()
            sums: dict = {}
            steps = 0
            bar = tqdm(loader, desc=f"{self.name} {epoch}/{epochs}", unit="batch", disable=not opts.progress,
                       leave=False, mininterval=0.5)
            for batch in bar:
                batch = _to_device(batch, opts.device)
                terms = self.losses(self.model, batch)
                optim.zero_grad(set_to_none=True)
                terms["loss"].backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config["grad_clip"])
                optim.step()
                steps += 1
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                bar.set_postfix({k: f"{v / steps:.4f}" for k, v in sums.items()})
            bar.close()
            row = {"epoch": epoch, **{k: v / max(steps, 1) for k, v in sums.items()},
                   "seconds": round(time.time() - t0, 3)}
            self.model.eval()
            if val is not None:
                row.update(validation_scores(self, val))
            score = row.get("val_f1_rel", epoch)  # without val: the last epoch
            if score > best:
                best, best_state = score, copy.deepcopy(self.model.state_dict())
                row["best"] = True
            history.append(row)
            if opts.on_epoch:
                opts.on_epoch(row)
        self.model.load_state_dict(best_state)
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

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model_rows(self.model, self.as_input(x))

    def extra_state(self) -> dict:
        return {"model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}}

    def load_extra_state(self, state: dict) -> None:
        self.model = self.build_model()
        self.model.load_state_dict(state["model"])
        self.model.eval()


def _to_device(batch: dict, device: str) -> dict:
    if device == "cpu":
        return batch
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
