"""CTM, connectionist temporal modelling (paper section 6.2, after Huang, Fei-Fei and Niebles, ECCV 2016), adapted to
parsing: a recurrent network outputs per-frame probabilities over k abstract sub-action labels.
TAPOS gives no sub-action labels, only how many sub-actions an instance has (n), so every
labeling of n sub-actions is a possible target, and "the loss is changed to the sum of log
likelihoods for all possible labelings". We compute that sum exactly with a forward recursion
over (frame, segment, label) states: a path splits the frames into exactly n consecutive
segments, neighbouring segments carry different labels, and every frame belongs to a sub-action
(no CTC blank: sub-actions tile the instance). Sampling a few labelings instead does not work: a
model that commits to particular labels is almost never rewarded by a random sample, so it learns
to spread its probability and never changes label.

Inference: best-path decoding, the most active output at every frame; a new sub-action starts
where it changes (which over-parses, as the paper observes for CTM).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import LabellingParser, TorchParser
from .registry import register


class CTMNet(nn.Module):
    def __init__(self, dim: int, hidden: int, labels: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, hidden, 3, padding=1)
        self.rnn = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(hidden, labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (T, D) -> log-probabilities (T, labels)."""
        return self.forward_padded(x[None], torch.tensor([x.shape[0]]))[0]

    def forward_padded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, D) padded, ``lengths`` (B,) -> log-probabilities (B, T, labels)."""
        h = F.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        packed = nn.utils.rnn.pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = self.rnn(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        return F.log_softmax(self.out(h), dim=-1)


def all_labelings_log_likelihood(lp: torch.Tensor, lengths: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """log of the summed probability of every labeling with exactly ``n`` segments.

    ``lp`` (B, T, k) per-frame log-probabilities, ``lengths`` (B,), ``n`` (B,) with
    ``1 <= n <= lengths``. A path gives every frame a label; labels change exactly n - 1 times
    and never to the same label. ``alpha[b, j, c]``: log-sum over paths of the frames so far that
    are in segment j with label c.
    """
    B, T, k = lp.shape
    J = int(n.max())
    neg = torch.finfo(lp.dtype).min / 4
    alpha = lp.new_full((B, J, k), neg)
    alpha[:, 0, :] = lp[:, 0, :]
    pad = lp.new_full((B, 1, k), neg)
    for t in range(1, T):
        total = torch.logsumexp(alpha, dim=2, keepdim=True)
        # enter segment j with label c from segment j - 1 with any other label c' != c
        share = torch.exp(alpha - total).clamp(max=1 - 1e-6)
        other = total + torch.log1p(-share)
        enter = torch.cat([pad, other[:, :-1, :]], dim=1)
        new = lp[:, t, None, :] + torch.logaddexp(alpha, enter)
        alpha = torch.where((t < lengths.to(lp.device))[:, None, None], new, alpha)
    last = alpha[torch.arange(B, device=lp.device), (n - 1).to(lp.device)]
    return torch.logsumexp(last, dim=1)


def best_path_labels(log_probs: np.ndarray) -> np.ndarray:
    """The most active output of every frame."""
    return log_probs.argmax(-1)


@register
class CTMParser(LabellingParser, TorchParser):
    name = "ctm"
    DEFAULTS = {
        **TorchParser.DEFAULTS,
        "labels": 16,      # k abstract sub-action labels
        "hidden": 128,     # width of the convolution and the bidirectional GRU
        **LabellingParser.LABELLING_DEFAULTS,
    }

    def build_model(self) -> nn.Module:
        return CTMNet(self.dim, self.config["hidden"], self.config["labels"])

    def losses(self, model, batch) -> dict:
        lengths = batch["lengths"]
        x = nn.utils.rnn.pad_sequence(batch["x"].split(lengths.tolist()), batch_first=True)
        lp = model.forward_padded(x, lengths)  # (B, T, C)
        n = torch.tensor([min(len(r) + 1, int(t)) for r, t in zip(batch["row_boundaries"], lengths)])
        ll = all_labelings_log_likelihood(lp, lengths, n)
        loss = (-ll / lengths.to(lp.device).float()).mean()  # per frame: long instances do not dominate
        return {"loss": loss, "nll": loss}

    def frame_labels(self, x: np.ndarray) -> np.ndarray:
        return best_path_labels(self.infer(x).cpu().numpy())
