"""Batches of instances for the torch methods: frames of several instances concatenated along time."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch


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
    x = torch.cat(xs)  # a new tensor: normalized in place (no two more copies of the batch's rows)
    if mean is not None:
        x.sub_(torch.as_tensor(mean, dtype=x.dtype)).div_(torch.as_tensor(std, dtype=x.dtype))
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

