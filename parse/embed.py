"""Learned embedding (label-free): a small encoder over the cached features, trained
self-supervised on pairs of nearby rows, then the ``kcpd`` or ``tsm`` readout on the embedding.
It reads no boundary; with ``use_class=true`` a linear head on each instance's mean embedding also
learns the action class (class labels, still no boundary).

Two objectives over pairs (an anchor row and a row 1..``positive_window`` rows from it):

- ``codes`` (default, after SwAV): K learned codes shared by the whole training split; the code
  distribution of each row of a pair (softmax of its cosine scores / temperature) predicts the
  other row's assignment, balanced over the batch by Sinkhorn-Knopp so that no code takes every
  row. Sub-actions recur across instances and noise does not, so the codes learn the recurring
  frame types; the readout runs on each row's code distribution.
- ``contrast``: temporal InfoNCE, the pair against the rows of the same instance at least
  ``negative_gap`` rows away; the readout runs on the L2-normalised embedding.

The encoder keeps the length: an input projection to ``hidden`` channels, ``blocks`` residual
dilated temporal convolutions (dilation 1, 2, 4, ...; ``conv_kernel=1``, the default, sees each
row alone), a projection to ``dim`` and L2-normalised rows. Instances of a padded batch are
masked after every layer, so a row's embedding is the same in a batch as alone; training runs
the encoder on each instance alone and pads only the embeddings (``dim`` wide), so a batch never
holds its input padded to its longest instance (TAPOS has one of 25,050 frames)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tapos.data.errors import TaposError

from .base import TorchParser
from .kcpd import KCPDParser
from .registry import register
from .segments import segment_labels
from .tsm import TSMParser

READOUTS = {"tsm": TSMParser, "kcpd": KCPDParser}
# The readouts' options: embed's name -> (readout, the readout's own name); the readout checks them
READOUT_OPTIONS = {"kernel": ("tsm", "kernel"), "taper": ("tsm", "taper"), "saliency": ("tsm", "saliency"),
                   "min_length": ("tsm", "min_length"), "cpd_kernel": ("kcpd", "kernel"),
                   "min_size": ("kcpd", "min_size"), "penalty_scale": ("kcpd", "penalty_scale"),
                   "penalty_fraction": ("kcpd", "penalty_fraction"), "noise_factor": ("kcpd", "noise_factor"),
                   "span": ("kcpd", "span")}
OBJECTIVES = ("codes", "contrast")


class TemporalEncoder(nn.Module):
    """``x (B, T, D)`` and ``mask (B, T)`` -> L2-normalised rows ``(B, T, dim)`` (0 where masked);
    one instance ``x (T, D)`` -> ``(T, dim)``."""

    def __init__(self, d_in: int, hidden: int, dim: int, blocks: int, kernel: int, dropout: float):
        super().__init__()
        self.inp = nn.Linear(d_in, hidden)
        self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, kernel, dilation=2 ** i, padding=2 ** i * (kernel // 2))
                                   for i in range(blocks))
        self.out = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if x.dim() == 2:
            return self(x[None], torch.ones(1, len(x), dtype=torch.bool, device=x.device))[0]
        m = mask[:, None, :].to(x.dtype)
        h = self.inp(self.dropout(x)).transpose(1, 2) * m  # (B, hidden, T)
        for conv in self.convs:
            h = (h + self.dropout(F.relu(conv(h)))) * m
        z = self.out(h.transpose(1, 2))
        return F.normalize(z, dim=-1) * mask[..., None].to(x.dtype)


def padded(x: torch.Tensor, offsets: list) -> tuple:
    """Concatenated rows ``(N, D)`` -> ``(B, Tmax, D)`` and the mask of real rows ``(B, Tmax)``."""
    lengths = [b - a for a, b in zip(offsets[:-1], offsets[1:])]
    out = x.new_zeros(len(lengths), max(lengths), x.shape[1])
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.bool, device=x.device)
    for i, (a, n) in enumerate(zip(offsets[:-1], lengths)):
        out[i, :n], mask[i, :n] = x[a:a + n], True
    return out, mask


def sample_pairs(mask: torch.Tensor, anchors: int, window: int) -> tuple:
    """``anchors`` random rows per instance and for each a random row 1..``window`` rows away
    (torch's RNG): ``(a, p, ok)``, each ``(B, anchors)``; ``ok`` is False for instances of one row.
    The (B, anchors, T) tables are boolean but for the draw's weights (no int64 distances)."""
    B, T = mask.shape
    lengths = mask.sum(1, keepdim=True)
    a = (torch.rand(B, anchors, device=mask.device) * lengths).long()
    t, at = torch.arange(T, device=mask.device)[None, None], a[..., None]
    near = (t >= at - window) & (t <= at + window) & (t != at) & mask[:, None, :]
    ok = near.any(-1)
    weights = near.flatten(0, 1).float()
    weights[~ok.flatten()] = 1.0  # a placeholder draw for anchors without a partner
    return a, torch.multinomial(weights, 1).view(B, anchors), ok


def rows_of(z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``z[b, idx[b, j]]`` for ``z (B, T, d)`` and ``idx (B, n)`` -> ``(B, n, d)``."""
    return torch.gather(z, 1, idx[..., None].expand(-1, -1, z.shape[2]))


def info_nce(z: torch.Tensor, mask: torch.Tensor, a: torch.Tensor, p: torch.Tensor, ok: torch.Tensor, gap: int,
             temperature: float) -> torch.Tensor:
    """Mean InfoNCE of the pairs ``(a, p)`` against the rows of the anchor's instance ``gap`` or
    more rows from it; anchors without a partner or a negative do not count."""
    t = torch.arange(z.shape[1], device=z.device)[None, None]
    neg = ((t - a[..., None]).abs() >= gap) & mask[:, None, :]
    logits = torch.einsum("bad,btd->bat", rows_of(z, a), z) / temperature  # (B, anchors, T)
    pos = t == p[..., None]
    lse = torch.logsumexp(logits.masked_fill(~(neg | pos), float("-inf")), dim=-1)
    loss = lse - torch.gather(logits, 2, p[..., None])[..., 0]
    ok = ok & neg.any(-1)
    return (loss * ok).sum() / ok.sum().clamp(min=1)


def sinkhorn(scores: torch.Tensor, eps: float, iters: int = 3) -> torch.Tensor:
    """Soft assignments ``(M, K)`` of M rows to K codes from their scores, balanced so that every
    code takes an equal share of the rows (SwAV's Sinkhorn-Knopp, in the log domain)."""
    logq = scores / eps
    M, K = logq.shape
    for _ in range(iters):
        logq = logq - torch.logsumexp(logq, 0, keepdim=True) - np.log(K)
        logq = logq - torch.logsumexp(logq, 1, keepdim=True) - np.log(M)
    return (logq + np.log(M)).exp()


def swapped_codes(z: torch.Tensor, codes: torch.Tensor, a: torch.Tensor, p: torch.Tensor, ok: torch.Tensor,
                  temperature: float, eps: float) -> torch.Tensor:
    """SwAV's swapped prediction: each row of a pair predicts the balanced code assignment of the
    other (cross-entropy of its code softmax), both ways, averaged over the pairs."""
    c = F.normalize(codes, dim=-1)
    sa, sp = rows_of(z, a)[ok] @ c.t(), rows_of(z, p)[ok] @ c.t()
    if sa.shape[0] == 0:
        return z.sum() * 0.0
    with torch.no_grad():
        qa, qp = sinkhorn(sa, eps), sinkhorn(sp, eps)
    la, lp = F.log_softmax(sa / temperature, -1), F.log_softmax(sp / temperature, -1)
    return -0.5 * ((qp * la).sum(-1) + (qa * lp).sum(-1)).mean()


@register
class EmbedParser(TorchParser):
    name = "embed"
    supervision = "none"
    SUPERVISION_OPTIONS = {"use_class": "class labels"}  # what an option adds (tapos-parse methods says so)
    DEFAULTS = {
        **TorchParser.DEFAULTS,
        "epochs": 20,           # the last is kept without a selection split (dev scores were flat from ~10 to 30)
        # encoder
        "hidden": 128,          # channels of the residual layers
        "dim": 64,              # width of the embedding (L2-normalised rows)
        "blocks": 3,            # residual layers (dilated temporal convolutions: dilation 1, 2, 4, ...)
        "conv_kernel": 1,       # their temporal kernel (odd); 1: each row alone (wider blurred the boundaries)
        "dropout": 0.1,
        # self-supervised objective on pairs of nearby rows
        "objective": "codes",   # codes: swapped prediction of balanced code assignments (SwAV);
                                # contrast: temporal InfoNCE against distant rows of the instance
        "anchors": 64,          # anchor rows sampled per instance and step
        "positive_window": 2,   # an anchor's partner lies 1..positive_window rows away
        "temperature": 0.1,     # of the code softmax (codes) or of the InfoNCE (contrast)
        "codes": 16,            # codes: number of learned codes (frame types shared by the split)
        "sinkhorn_eps": 0.05,   # codes: entropy of the balanced assignment (smaller: harder)
        "negative_gap": 12,     # contrast: negatives are rows at least this far from the anchor
        "use_class": False,     # also learn the action class from the mean embedding (reads class labels)
        "class_weight": 0.5,    # weight of that cross-entropy
        # readout on the embedding (the code distributions with objective=codes): kcpd or tsm, their options
        "readout": "kcpd",
        "cpd_kernel": "linear",  # kcpd: rbf, cosine or linear
        "min_size": "0.4s",     # kcpd: the shortest segment (seconds, a fraction of the instance, or rows)
        "penalty_scale": 1.0,   # kcpd: scale of the penalty per change point; "auto" (--select-on dev)
        "penalty_fraction": 0.06,  # kcpd: a change point must explain this share of the spread of `span`
        "span": "10s",          # kcpd: ... of this much of the instance's rows (as kcpd's own default). On
                                # TAPOS's structure (train split, stride 3): 1.1x the true count, its
                                # correlation with the truth 0.78, GEBD avg 0.76; span null (a share of
                                # the whole instance): 1.1x but correlation 0.33, avg 0.66
        "noise_factor": None,   # kcpd: no cap from the noise of the cost path: code distributions are
                                # nearly one-hot, their noise gains little, and the cap over-parsed 3x
        "kernel": "2s",         # tsm: checkerboard side (seconds, a fraction of the instance, or even rows)
        "taper": 0.5,           # tsm: Gaussian taper of the kernel
        "saliency": 1.0,        # tsm: a split's peak must reach mean + saliency * std; "auto" (--select-on dev)
        "min_length": "1s",     # tsm: no part of a split is shorter (seconds, a fraction of the instance, or rows)
    }
    TUNABLE = {"penalty_scale": KCPDParser.TUNABLE["penalty_scale"], "saliency": TSMParser.TUNABLE["saliency"]}

    def __init__(self, **config):
        super().__init__(**config)
        c = self.config
        for key, choices in (("readout", READOUTS), ("objective", OBJECTIVES)):
            if c[key] not in choices:
                raise TaposError(f"embed: {key} must be one of {', '.join(choices)}, not {c[key]!r}")
        for key in ("hidden", "dim", "blocks", "anchors", "positive_window", "negative_gap", "codes"):
            if not isinstance(c[key], int) or isinstance(c[key], bool) or c[key] < 1:
                raise TaposError(f"embed: {key} must be a whole number >= 1, not {c[key]!r}")
        if not isinstance(c["conv_kernel"], int) or c["conv_kernel"] < 1 or c["conv_kernel"] % 2 == 0:
            raise TaposError(f"embed: conv_kernel must be an odd whole number >= 1, not {c['conv_kernel']!r}")
        if c["negative_gap"] <= c["positive_window"]:
            raise TaposError(f"embed: negative_gap ({c['negative_gap']}) must exceed positive_window "
                             f"({c['positive_window']}): a partner would also be a negative")
        for key, positive in (("temperature", True), ("sinkhorn_eps", True), ("class_weight", False),
                              ("dropout", False)):
            v = c[key]
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or (positive and v == 0):
                raise TaposError(f"embed: {key} must be a number {'> 0' if positive else '>= 0'}, not {v!r}")
        if not isinstance(c["use_class"], bool):
            raise TaposError(f"embed: use_class must be true or false, not {c['use_class']!r}")
        for key, (readout, _) in READOUT_OPTIONS.items():
            if readout != c["readout"] and c[key] == "auto":
                raise TaposError(f"embed: {key} is an option of the {readout} readout; \"auto\" tunes nothing "
                                 f"with readout={c['readout']}")
        self.readout()  # the readout checks its own options

    def readout(self):
        """The readout parser with the current options ("auto" read as its first candidate)."""
        name = self.config["readout"]
        parser = READOUTS[name](**{own: self.option(key) for key, (r, own) in READOUT_OPTIONS.items() if r == name})
        parser.rate = self.rate  # the embedding keeps the rows: lengths in seconds read the same rate
        return parser

    def build_model(self) -> nn.Module:
        c = self.config
        model = TemporalEncoder(self.dim, c["hidden"], c["dim"], c["blocks"], c["conv_kernel"], c["dropout"])
        if c["objective"] == "codes":
            model.codes = nn.Parameter(torch.randn(c["codes"], c["dim"]))
        if c["use_class"]:  # only then: without it the model never sees a class
            model.classifier = nn.Linear(c["dim"], self.num_classes)
        return model

    def losses(self, model, batch) -> dict:
        c = self.config
        offsets = batch["offsets"].tolist()
        # each instance alone (the same rows as a padded batch), then only the embeddings padded
        z, mask = padded(torch.cat([model(batch["x"][a:b]) for a, b in zip(offsets[:-1], offsets[1:])]), offsets)
        a, p, ok = sample_pairs(mask, c["anchors"], c["positive_window"])
        if c["objective"] == "codes":
            loss = swapped_codes(z, model.codes, a, p, ok, c["temperature"], c["sinkhorn_eps"])
        else:
            loss = info_nce(z, mask, a, p, ok, c["negative_gap"], c["temperature"])
        terms = {"loss": loss, c["objective"]: loss}
        if c["use_class"]:
            mean = z.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            ce = F.cross_entropy(model.classifier(mean), batch["actions"])
            terms.update(loss=loss + c["class_weight"] * ce, ce=ce)
        return terms

    def embed(self, x: np.ndarray) -> np.ndarray:
        """What the readout sees for normalized rows ``x (T, D)``: each row's code distribution
        ``(T, codes)`` (objective codes) or its embedding ``(T, dim)`` (contrast)."""
        z = self.infer(x)
        if self.config["objective"] == "codes":
            with torch.inference_mode():
                codes = F.normalize(self.model.codes, dim=-1)
                z = F.softmax(z @ codes.t() / self.config["temperature"], dim=-1)
        return z.cpu().numpy().astype(np.float64)

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        return self.readout().boundary_rows(self.embed(x))

    # --- analysis: with objective=codes the codes are the learned sub-action patterns ---------
    def patterns(self, features: np.ndarray) -> Optional[np.ndarray]:
        """Each row's code distribution ``(T, codes)`` (objective codes), None with contrast,
        whose embedding has no patterns."""
        if self.config["objective"] != "codes":
            return None
        return self.embed(self.transform(features))

    def pattern_labels(self, features: np.ndarray, responses: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """Each predicted segment labelled with the argmax of its mean code distribution: the
        labels change only at the readout's boundaries (a row's own argmax flickers inside a
        segment, and the readout never looks at it)."""
        resp = self.patterns(features) if responses is None else responses
        if resp is None:
            return None
        return segment_labels(resp, self.readout().boundary_rows(resp).tolist())
