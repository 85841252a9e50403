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

Two choices of ours make the sum trainable (``min_fraction=0`` is closest to the paper's words):
each segment of a labeling lasts at least ``min_fraction * T / n`` frames, and the exclusion of the
previous label is computed exactly. Without a minimum length the sum is maximised by one confident
label on every frame: n - 1 one-frame excursions, placed anywhere, add up over their many
placements, so the loss falls while the argmax label never changes. (The earlier shortcut
``total + log(1 - share)`` with share clamped below 1 - 1e-6 also floored the cost of a label
change at 1e-6 of the total mass, which made those excursions cheaper still.)

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


def all_labelings_log_likelihood(lp: torch.Tensor, lengths: torch.Tensor, n: torch.Tensor,
                                  min_length: torch.Tensor = None) -> torch.Tensor:
    """log of the summed probability of every labeling with exactly ``n`` segments, each at least
    ``min_length`` frames long.

    ``lp`` (B, T, k) per-frame log-probabilities, ``lengths`` (B,), ``n`` (B,) with
    ``1 <= n <= lengths``, ``min_length`` (B,) with ``n * min_length <= lengths`` (default 1). A
    path gives every frame a label; labels change exactly n - 1 times and never to the same label.
    ``alpha[b, j, c, d]``: log-sum over paths of the frames so far that are in segment j with label
    c, ``d + 1`` frames into it (``d`` capped at ``min_length - 1``: from there the segment may end).

    Why the minimum length: without it the sum is maximised by one confident label on every frame,
    the n - 1 changes spent on one-frame excursions that the count of their placements pays for
    (the model then never changes its argmax label and parses nothing).
    """
    B, T, k = lp.shape
    J = int(n.max())
    device = lp.device
    min_length = torch.ones(B, dtype=torch.long) if min_length is None else min_length.long()
    D = int(min_length.max())
    cap = (min_length - 1).to(device)                       # (B,) the counter at which a segment may end
    neg = torch.finfo(lp.dtype).min / 4
    d_idx = torch.arange(D, device=device)
    beyond = d_idx[None, :] > cap[:, None]                   # (B, D) counters an instance never uses
    not_self = torch.eye(k, dtype=torch.bool, device=device)  # enter label c from any other label c'
    alpha = lp.new_full((B, J, k, D), neg)
    alpha[:, 0, :, 0] = lp[:, 0, :]
    pad = lp.new_full((B, 1, k), neg)
    cap_at = cap.view(B, 1, 1, 1).expand(B, J, k, 1)
    for t in range(1, T):
        full = alpha.gather(3, cap_at).squeeze(3)            # (B, J, k): segments long enough to end
        other = torch.logsumexp(full[:, :, None, :].masked_fill(not_self, neg), dim=3)  # exact: no 1 - share
        enter = torch.cat([pad, other[:, :-1, :]], dim=1)   # into segment j from segment j - 1
        stay = torch.cat([alpha.new_full((B, J, k, 1), neg), alpha[..., :-1]], dim=3)  # one frame further
        at_cap = torch.logaddexp(stay.gather(3, cap_at), full[..., None])  # the capped counter keeps its mass
        stay = stay.scatter(3, cap_at, at_cap)
        first = torch.logaddexp(stay[..., :1], enter[..., None])  # a new segment starts at counter 0
        stay = torch.cat([first, stay[..., 1:]], dim=3)
        new = lp[:, t, None, :, None] + stay.masked_fill(beyond[:, None, None, :], neg)
        alpha = torch.where((t < lengths.to(device))[:, None, None, None], new, alpha)
    last = alpha.gather(3, cap_at).squeeze(3)[torch.arange(B, device=device), (n - 1).to(device)]
    return torch.logsumexp(last, dim=1)


def best_path_labels(log_probs: np.ndarray) -> np.ndarray:
    """The most active output of every frame."""
    return log_probs.argmax(-1)


@register
class CTMParser(LabellingParser, TorchParser):
    name = "ctm"
    supervision = "boundaries"  # their number per instance (n), not their positions
    DEFAULTS = {
        **TorchParser.DEFAULTS,
        "labels": 16,      # k abstract sub-action labels
        "hidden": 128,     # width of the convolution and the bidirectional GRU
        "min_fraction": 0.25,  # a labeling's segments last at least this share of T / n frames (ours: 0
                               # allows one-frame segments, and the model collapses onto one label)
        **LabellingParser.LABELLING_DEFAULTS,
    }
    # as close to the paper's words as the exact sum allows (one-frame segments, raw best path): it
    # remains an adaptation (the paper's CTM parses with sub-action labels TAPOS does not have)
    PRESETS = {"paper": {"min_fraction": 0.0, "min_segment": 1}}

    def build_model(self) -> nn.Module:
        return CTMNet(self.dim, self.config["hidden"], self.config["labels"])

    def losses(self, model, batch) -> dict:
        lengths = batch["lengths"]
        x = nn.utils.rnn.pad_sequence(batch["x"].split(lengths.tolist()), batch_first=True)
        lp = model.forward_padded(x, lengths)  # (B, T, C)
        n = torch.tensor([min(len(r) + 1, int(t)) for r, t in zip(batch["row_boundaries"], lengths)])
        shortest = (self.config["min_fraction"] * lengths.float() / n.float()).floor().long().clamp(min=1)
        ll = all_labelings_log_likelihood(lp, lengths, n, torch.minimum(shortest, lengths // n))
        loss = (-ll / lengths.to(lp.device).float()).mean()  # per frame: long instances do not dominate
        return {"loss": loss, "nll": loss}

    def frame_labels(self, x: np.ndarray) -> np.ndarray:
        return best_path_labels(self.infer(x).cpu().numpy())
