"""TCN boundary detector (paper section 6.2, after BSN): a two-layer temporal convolution network
scores every frame; the annotated boundary frame and its k neighbours on each side are labelled 1,
the rest 0, with a weighted binary cross-entropy for the imbalance. Inference: frames scoring
over theta_c; each run of such frames gives one boundary at its highest frame (the paper leaves
how runs are read open; one boundary per frame over the threshold would make every run a burst)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .registry import register
from .segments import runs_above
from .base import TorchParser


class TemporalConvNet(nn.Module):
    """Two temporal convolutions (same-length padding): ``x`` (T, D) -> ``(T, out)``. TCN scores
    boundaries with it (out = 1), ISBA classifies frames (out = K)."""

    def __init__(self, dim: int, hidden: int, kernel: int, out: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv1d(dim, hidden, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(hidden, out, kernel, padding=kernel // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(F.relu(self.conv1(x.t()[None])))
        return self.conv2(h)[0].t()


@register
class TCNParser(TorchParser):
    name = "tcn"
    supervision = "boundaries"
    DEFAULTS = {
        **TorchParser.DEFAULTS,
        "hidden": 256,      # channels of the first temporal convolution
        "kernel": 5,        # temporal kernel of both layers (receptive field 2 * kernel - 1)
        "neighbours": 2,    # k: frames on each side of a boundary also labelled 1
        "threshold": "auto",  # theta_c on the sigmoid output (the paper: e.g. 0.5); "auto": chosen on the selection split
        "dropout": 0.3,
    }
    TUNABLE = {"threshold": (0.5, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9)}  # the paper's 0.5 first
    PRESETS = {"paper": {"threshold": 0.5}}

    def build_model(self) -> nn.Module:
        return TemporalConvNet(self.dim, self.config["hidden"], self.config["kernel"], 1, self.config["dropout"])

    def losses(self, model, batch) -> dict:
        offsets = batch["offsets"].tolist()
        logits, targets = [], []
        k = int(self.config["neighbours"])
        for i, rows in enumerate(batch["row_boundaries"]):
            s, e = offsets[i], offsets[i + 1]
            logits.append(model(batch["x"][s:e])[:, 0])
            y = torch.zeros(e - s, device=batch["x"].device)
            for r in rows.tolist():
                y[max(r - k, 0):min(r + k + 1, e - s)] = 1.0
            targets.append(y)
        logit, y = torch.cat(logits), torch.cat(targets)
        pos = y.sum().clamp(min=1.0)
        pos_weight = (y.numel() - pos) / pos  # the weighted BCE: positives weigh #neg / #pos
        loss = F.binary_cross_entropy_with_logits(logit, y, pos_weight=pos_weight)
        return {"loss": loss, "bce": loss}

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        prob = torch.sigmoid(self.infer(x)[:, 0]).cpu().numpy()
        rows = runs_above(prob, self.option("threshold"))
        return rows[rows > 0]
