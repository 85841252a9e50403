"""CTM, connectionist temporal modelling (paper section 6.2, after Huang, Fei-Fei and Niebles, ECCV 2016), adapted to
parsing: a recurrent network outputs per-frame probabilities over k abstract sub-action labels.
TAPOS gives no sub-action labels, only how many sub-actions an instance has (n), so every
labeling of n sub-actions is a possible target, and "the loss is changed to the sum of log
likelihoods for all possible labelings". We compute that sum exactly: a path splits the frames
into exactly n consecutive segments, neighbouring segments carry different labels, and every frame
belongs to a sub-action (no CTC blank: sub-actions tile the instance). The recursion runs over
segments, not frames (:func:`labelings_log_likelihood`): n steps over tables of (frame, label),
so memory follows T x n x k, not the T x n x k x (shortest segment) states of a recursion over
frames that counts each segment's length (TAPOS has an instance of 25,050 frames and 54
sub-actions: those states, kept for the backward pass, did not fit in any memory). Sampling a
few labelings instead does not work: a model that commits to particular labels is almost never
rewarded by a random sample, so it learns to spread its probability and never changes label.

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

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

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
        return self.forward_many([x])[0]

    def forward_many(self, xs: list, packed: Optional[bool] = None) -> list:
        """Instances ``xs`` [(T_i, D)] -> their log-probabilities [(T_i, labels)].

        Nothing is padded to the longest instance: memory follows the batch's frames, not its size
        times its longest instance (TAPOS has one of 25,050 frames; padded to it, a batch of 16 at
        2,048-d was a 3.3 GB input alone). The convolution runs on each instance (zero padding at
        both ends, as in a padded batch). The GRU runs on each instance alone on the CPU, on a
        packed batch on a GPU (cuDNN): the same outputs, but the CPU's backward pass through a
        packed sequence grows with the square of the longest instance (42 s for one of 2,755
        frames, against 1.6 s unpacked). ``packed``: one packed batch or not (default: on a GPU)."""
        h = [F.relu(self.conv(x.t()[None]))[0].t() for x in xs]
        if h[0].is_cuda if packed is None else packed:
            out, _ = self.rnn(nn.utils.rnn.pack_sequence(h, enforce_sorted=False))
            lp = F.log_softmax(self.out(out.data), dim=-1)  # (sum T_i, labels), time-major, sorted batch
            starts = torch.cumsum(out.batch_sizes, 0) - out.batch_sizes  # first packed row of each step
            pos = out.unsorted_indices.cpu()  # instance i is column pos[i] of every step it reaches
            return [lp[(starts[:x.shape[0]] + pos[i]).to(lp.device)] for i, x in enumerate(h)]
        return [F.log_softmax(self.out(self._gru(x)), dim=-1) for x in h]

    def _gru(self, x: torch.Tensor) -> torch.Tensor:
        """The bidirectional GRU on one instance ``x (T, hidden)``. On the CPU its backward pass keeps
        a graph of every step (about 35 KB a row: 0.9 GB for 25,050 rows, and a batch sums them), so
        while training an instance over ``GRU_CHUNK`` rows runs each direction ``GRU_CHUNK`` rows at a
        time, each chunk without a graph and recomputed in the backward pass (a reentrant checkpoint:
        a non-reentrant one drops the saved tensors but still builds the graph, which is most of
        those 35 KB): only the chunks' outputs and states are kept. The same outputs as one call."""
        if len(x) <= GRU_CHUNK or not (torch.is_grad_enabled() and x.requires_grad):
            return self.rnn(x[None])[0][0]
        return torch.cat([self._direction(x, ""), self._direction(x.flip(0), "_reverse").flip(0)], 1)

    def _direction(self, x: torch.Tensor, suffix: str) -> torch.Tensor:
        weights = [getattr(self.rnn, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        state = x.new_zeros(1, 1, self.rnn.hidden_size)
        out = []
        for s in range(0, len(x), GRU_CHUNK):
            rows, state = checkpoint(_gru_steps, x[s:s + GRU_CHUNK], state, *weights, use_reentrant=True)
            out.append(rows)
        return torch.cat(out)


GRU_CHUNK = 1024  # rows of one instance run at a time (and recomputed) in training on the CPU


def _gru_steps(x, state, w_ih, w_hh, b_ih, b_hh):
    """One direction of one layer of a GRU over ``x (T, in)`` from ``state (1, 1, hidden)`` (what
    ``nn.GRU`` calls): its outputs ``(T, hidden)`` and last state."""
    out, last = torch._VF.gru(x[None], state, [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, True, False, True)
    return out[0], last


NEG = -1e30  # log of "no path" (finite: -inf would give NaN gradients)


def _exclusive_logsumexp(a: torch.Tensor) -> torch.Tensor:
    """``out[:, c] = logsumexp(a[:, c'] for c' != c)``, exactly (from the labels before c and
    those after it; no ``log(1 - share)`` that loses the case where one label holds the mass)."""
    fill = a.new_full((a.shape[0], 1), NEG)
    before = torch.cat([fill, torch.logcumsumexp(a[:, :-1], 1)], 1)
    after = torch.cat([torch.logcumsumexp(a[:, 1:].flip(1), 1).flip(1), fill], 1)
    return torch.logaddexp(before, after)


def _next_segment(end: torch.Tensor, cum: torch.Tensor, L: int) -> torch.Tensor:
    """``end[t, c]`` of segment j - 1 (log-sum over paths whose segment j - 1 has label c and ends at
    frame t) -> the same for segment j: it starts at s + 1 after segment j - 1 ended at s with
    another label, and lasts ``t - s >= L`` frames, its frames' log-probabilities
    ``cum[t, c] - cum[s, c]``. The sum over s is one running log-sum-exp over time."""
    T, k = end.shape
    run = torch.logcumsumexp(_exclusive_logsumexp(end) - cum, 0)  # over s <= t
    return torch.cat([end.new_full((min(L, T), k), NEG), cum[L:] + run[:T - L]], 0)


# lattices of more states than this (frames x labels x segments) are recomputed in the backward
# pass instead of stored: memory stays one (T, labels) table per segment. Reentrant checkpoints,
# here and in the GRU: the loss supports .backward() (the training loop), not torch.autograd.grad.
CHECKPOINT_STATES = 1 << 18


def labelings_log_likelihood(lp: torch.Tensor, n: int, min_length: int = 1) -> torch.Tensor:
    """log of the summed probability of every labeling of one instance with exactly ``n``
    segments, each at least ``min_length`` frames long, neighbours with different labels.

    ``lp`` (T, k) per-frame log-probabilities, ``1 <= n``, ``n * min_length <= T``. A recursion over
    segments, not frames (semi-Markov): ``end[t, c]`` after step j sums the paths whose segment j
    has label c and ends at frame t; a segment's frames are a difference of cumulative
    log-probabilities (in float64, where the running sums over 25,000 frames keep their
    precision). Memory: n tables of (T, k), against T x n x k x min_length states for a recursion
    over frames that counts each segment's length; time: n vectorised steps instead of T."""
    T, k = lp.shape
    n, L = int(n), max(int(min_length), 1)
    cum = lp.double().cumsum(0)                                     # cum[t, c] = sum of lp[:t + 1, c]
    t = torch.arange(T, device=lp.device)[:, None]
    end = cum.masked_fill(t < L - 1, NEG)                           # segment 0: frames 0..t, t + 1 >= L
    big = T * k * n > CHECKPOINT_STATES and torch.is_grad_enabled() and lp.requires_grad
    for _ in range(1, n):
        if big:
            end = checkpoint(_next_segment, end, cum, L, use_reentrant=True)
        else:
            end = _next_segment(end, cum, L)
    return torch.logsumexp(end[T - 1], 0).to(lp.dtype)


def all_labelings_log_likelihood(lp: torch.Tensor, lengths: torch.Tensor, n: torch.Tensor,
                                  min_length: torch.Tensor = None) -> torch.Tensor:
    """:func:`labelings_log_likelihood` of each instance of a padded batch.

    ``lp`` (B, T, k) per-frame log-probabilities, ``lengths`` (B,), ``n`` (B,) with
    ``1 <= n <= lengths``, ``min_length`` (B,) with ``n * min_length <= lengths`` (default 1); returns (B,).

    Why the minimum length: without it the sum is maximised by one confident label on every frame,
    the n - 1 changes spent on one-frame excursions that the count of their placements pays for
    (the model then never changes its argmax label and parses nothing).
    """
    B = lp.shape[0]
    min_length = torch.ones(B, dtype=torch.long) if min_length is None else min_length
    return torch.stack([labelings_log_likelihood(lp[b, :int(lengths[b])], int(n[b]), int(min_length[b]))
                        for b in range(B)])


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
        lengths = batch["lengths"].cpu()
        lps = model.forward_many(batch["x"].split(lengths.tolist()))  # [(T_i, C)], no padding
        n = torch.tensor([min(len(r) + 1, int(t)) for r, t in zip(batch["row_boundaries"], lengths)])
        shortest = (self.config["min_fraction"] * lengths.float() / n.float()).floor().long().clamp(min=1)
        min_length = torch.minimum(shortest, lengths // n)
        ll = torch.stack([labelings_log_likelihood(lp, int(k), int(m)) for lp, k, m in zip(lps, n, min_length)])
        loss = (-ll / lengths.to(ll.device).float()).mean()  # per frame: long instances do not dominate
        return {"loss": loss, "nll": loss}

    def frame_labels(self, x: np.ndarray) -> np.ndarray:
        return best_path_labels(self.infer(x).cpu().numpy())
