"""The TSN head on cached features (per-snippet classifier shared across segments, average
consensus), and the class scores of any TSN over a loader."""
from __future__ import annotations

import torch
from torch import nn


class FeatureTSN(nn.Module):
    """``(B, K, D)`` snippet features -> ``(B, C)`` class scores.

    Each snippet is standardized (training-split statistics, stored as buffers so a checkpoint is
    self-contained), dropped out and classified by one linear layer shared by all segments; the
    segment scores are averaged (TSN's average consensus) before the softmax.
    """

    def __init__(self, dim: int, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.fc(self.dropout(x)).mean(dim=1)


@torch.no_grad()
def predict_scores(model: nn.Module, loader, device="cpu") -> tuple:
    """``(keys, softmax scores (N, C))`` of a TSN (on features or frames) over ``loader``, whose
    batches are ``(inputs, labels, keys)``, in the loader's order."""
    import numpy as np

    model.eval()
    keys, out = [], []
    for x, _, k in loader:
        out.append(torch.softmax(model(x.to(device)), dim=1).cpu().numpy())
        keys += k
    return keys, np.concatenate(out)
