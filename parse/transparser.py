"""TransParser (paper section 5.2): stacked Soft-Pattern-Strengthen units over frame features.

An SPS unit keeps a learned pattern miner ``phi`` (m x d_phi). Each frame feature ``f_t`` is a
query against the miner's rows (keys and values)::

    alpha_t = softmax((f_t W_Q)(phi W_K)^T)        (1)   one distribution over the m patterns
    r_t     = alpha_t (phi W_V)                    (2)

with two heads (two groups of W_Q, W_K, W_V) whose outputs are merged by one fc layer into
``r~_t``; the unit outputs ``f'_t = FFN(f_t + r~_t)``. A second unit maps ``f'`` to ``f''``.

Losses: the local loss ``(L_sim + lambda) / L_dissim`` on the attention of the last unit
(mean L2 distance between attention vectors of frames of the same sub-action, over that of frames
of different sub-actions), and the global loss, the NLL of the action class from the mean over
frames of ``W f''_t``. Inference (the paper): the argmax pattern of the last unit's attention per
frame; a new sub-action starts where it changes.

Where the paper is silent, our choices (all in ``DEFAULTS``):

- the attention of several heads is their mean (a distribution over the m patterns); it is what
  the local loss shapes and what inference reads. ``attention=0`` or ``1`` picks one head instead;
- an input projection to ``d_model`` (``None`` keeps the feature width, as the paper writes it);
- scaling by 1/sqrt(d_k) and the FFN with residual and LayerNorm, as in the Transformer [50];
- the local loss on at most ``local_max_frames`` random frames per instance (it is O(T^2));
- ``min_segment`` merges argmax runs shorter than that many rows (1 = off, the paper);
- ``boundaries="change"`` (``--preset ensemble``) reads boundaries from the attention as the local loss
  shapes it: the change of the mean attention between the ``window`` rows before and after each
  row (total variation, 0..1), whose peaks above ``threshold`` are boundaries. The argmax flickers
  between patterns that share a sub-action's mass and its boundaries depend on the smoothing; the
  change score does not, and it does not depend on how the patterns are numbered, so the scores
  of models trained with other seeds can be averaged (``members``: a seed ensemble; see docs/results/stability.md
  for what each choice does to the spread over seeds).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tapos.data.annotations import UNKNOWN_ACTION
from tapos.data.errors import TaposError

from .base import FitOptions, LabellingParser, TorchParser
from .count import expected_count, fit_count_model
from .registry import register
from .segments import pick_peaks, segment_labels, top_peaks, window_means
from .validation import validation_scores


class SPSUnit(nn.Module):
    """One Soft-Pattern-Strengthen unit. ``forward(f) -> (f', alpha)`` with ``f`` (N, d) and
    ``alpha`` (heads, N, m)."""

    def __init__(self, d: int, patterns: int, d_phi: int, heads: int = 2, d_k: int = 64, d_ff: int = 512,
                 dropout: float = 0.1, post_norm: bool = True, scaled: bool = True):
        super().__init__()
        self.phi = nn.Parameter(torch.randn(patterns, d_phi) / math.sqrt(d_phi))  # the pattern miner
        self.w_q = nn.Parameter(torch.randn(heads, d, d_k) / math.sqrt(d))
        self.w_k = nn.Parameter(torch.randn(heads, d_phi, d_k) / math.sqrt(d_phi))
        self.w_v = nn.Parameter(torch.randn(heads, d_phi, d) / math.sqrt(d_phi))
        self.merge = nn.Linear(heads * d, d)  # the single fc layer merging the heads' r_t
        self.ffn = nn.Sequential(nn.Linear(d, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d))
        self.post_norm = post_norm
        if post_norm:
            self.norm1 = nn.LayerNorm(d)
            self.norm2 = nn.LayerNorm(d)
        self.scale = 1.0 / math.sqrt(d_k) if scaled else 1.0
        self.dropout = nn.Dropout(dropout)

    def responses(self, f: torch.Tensor) -> torch.Tensor:
        """``alpha`` (heads, N, m): each row's attention over the miner's patterns, eq. (1)."""
        q = torch.einsum("nd,hdk->hnk", f, self.w_q)               # (H, N, d_k)
        k = torch.einsum("md,hdk->hmk", self.phi, self.w_k)        # (H, m, d_k)
        return torch.softmax(torch.einsum("hnk,hmk->hnm", q, k) * self.scale, dim=-1)

    def forward(self, f: torch.Tensor):
        alpha = self.responses(f)                                  # (1)
        v = torch.einsum("md,hdk->hmk", self.phi, self.w_v)        # (H, m, d)
        r = torch.einsum("hnm,hmd->hnd", alpha, v)                 # (2)
        r_tilde = self.merge(r.permute(1, 0, 2).reshape(f.shape[0], -1))
        x = f + self.dropout(r_tilde)                              # amplification
        if self.post_norm:
            x = self.norm1(x)
            return self.norm2(x + self.dropout(self.ffn(x))), alpha
        return self.ffn(x), alpha


class TransParserNet(nn.Module):
    def __init__(self, dim: int, num_classes: int, cfg: dict):
        super().__init__()
        d = cfg["d_model"] or dim
        self.inp = nn.Sequential(nn.Linear(dim, d), nn.LayerNorm(d)) if cfg["d_model"] else nn.Identity()
        self.units = nn.ModuleList([
            SPSUnit(d, cfg["patterns"], cfg["d_phi"], cfg["heads"], cfg["d_k"], cfg["d_ff"], cfg["dropout"],
                    cfg["post_norm"], cfg["scaled"])
            for _ in range(cfg["units"])
        ])
        self.classifier = nn.Linear(d, num_classes)  # W of the global loss
        self.attention = cfg["attention"]
        readout = cfg.get("readout", "unit")
        self.refined = readout == "refined" or (readout == "paper" and cfg["units"] == 1)

    def forward(self, x: torch.Tensor):
        """Returns the last unit's output ``(N, d)`` and the attention that parses ``(N, m)``."""
        f = self.inp(x)
        for unit in self.units:
            f, alpha = unit(f)
        if self.refined:  # the responses of the refined features f' to the last unit's patterns
            alpha = self.units[-1].responses(f)
        return f, (alpha.mean(0) if self.attention == "mean" else alpha[int(self.attention)])


def local_loss(att: torch.Tensor, seg: torch.Tensor, lam: float, eps: float = 1e-8):
    """``(L_sim + lam) / L_dissim`` for one instance: ``att`` (T, m), ``seg`` (T,) segment ids.

    Returns ``(loss, L_sim, L_dissim)``, or None when the instance has a single sub-action
    (no pair across sub-actions). Pairs of a frame with itself are left out of L_sim.
    """
    d2 = (att[:, None, :] - att[None, :, :]).pow(2).sum(-1)
    dist = torch.sqrt(d2 + eps)  # eps: a finite gradient where two attentions coincide
    same = seg[:, None] == seg[None, :]
    off_diag = ~torch.eye(len(seg), dtype=torch.bool, device=att.device)
    sim_mask = same & off_diag
    if not (~same).any() or not sim_mask.any():
        return None
    l_sim = dist[sim_mask].mean()
    l_dissim = dist[~same].mean()
    return (l_sim + lam) / l_dissim, l_sim, l_dissim


@register
class TransParser(LabellingParser, TorchParser):
    name = "transparser"
    supervision = "boundaries"  # and the action classes (global loss)
    DEFAULTS = {
        **TorchParser.DEFAULTS,
        "units": 2,               # stacked SPS units (Table 3: 1 or 2)
        "local_loss": True,       # the local loss on the last unit's attention (Table 3 ablation)
        "patterns": 32,           # m, rows of each pattern miner (paper silent; Figure 8 shows row 16)
        "d_model": 256,           # input projection width; None: no projection, d = feature width
        "d_phi": 128,             # width of a pattern (a miner row)
        "heads": 2,               # the paper's two groups of W_Q, W_K, W_V
        "d_k": 64,                # query/key width per head
        "d_ff": 512,              # hidden width of the FFN
        "dropout": 0.1,           # on r~_t and inside the FFN
        "post_norm": True,        # residual + LayerNorm around the FFN, as in the Transformer
        "scaled": True,           # 1/sqrt(d_k) inside the softmax, as in the Transformer
        "lambda": 0.5,            # regularizer in (L_sim + lambda) / L_dissim (paper silent)
        "global_weight": 1.0,     # weight of the global (classification) loss
        "local_max_frames": 256,  # frames sampled per instance for the O(T^2) local loss
        "attention": "mean",      # heads' attention used by the loss and inference: "mean", 0 or 1
        "readout": "unit",        # which attention parses: "unit" (the last unit's, on its input),
                                  # "refined" (the last unit's patterns against the final refined
                                  # features f'), "paper" (refined with one unit, as the paper states
                                  # for the single-unit variant; unit with two)
        "boundaries": "argmax",   # "argmax": where the argmax pattern changes (the paper; after
                                  # min_segment); "change": peaks of the attention's change score
                                  # above threshold (--preset ensemble); "count": its k strongest
                                  # peaks, k expected for the instance's length (tapos.parse.count,
                                  # fitted on the fit split's counts)
        "window": 4,              # rows averaged on each side by the change score (4 had the best
                                  # dev F1 among 3..6 over 50 seeds, benchmarks/transparser_stability.py)
        "threshold": "auto",      # a peak of the change score (0..1) must reach this; "auto": chosen
                                  # on the selection split among TUNABLE
        "members": 1,             # models in a seed ensemble (member i trains with seed
                                  # seed * members + i); their change scores are averaged: one model
                                  # moves by 0.1-0.15 F1 between seeds, five by 0.025 (--preset ensemble)
        **LabellingParser.LABELLING_DEFAULTS,  # min_segment on the argmax pattern (1 = the paper)
    }
    TUNABLE = {**LabellingParser.TUNABLE, "threshold": (0.5, 0.3, 0.4, 0.6, 0.7, 0.8)}
    PRESETS = {"paper": {  # eq. (1)-(3) as written: no projection, no scaling, f' = FFN(f + r~), raw argmax
        "d_model": None, "scaled": False, "post_norm": False, "readout": "paper", "min_segment": 1,
        "boundaries": "argmax", "members": 1,
    }, "ensemble": {  # the stable configuration (docs/results/stability.md): not yet the default,
        # because its threshold is absolute and a model whose attention stays near uniform (tiny
        # models, few epochs) finds no boundary with it
        "boundaries": "change", "members": 5,
    }}
    BOUNDARIES = ("argmax", "change", "count")
    UNUSED = {"argmax": ("threshold",), "change": ("min_segment",), "count": ("threshold", "min_segment")}

    def __init__(self, **config):
        super().__init__(**config)
        if self.config["boundaries"] not in self.BOUNDARIES:
            raise TaposError(f"transparser: boundaries must be one of {', '.join(self.BOUNDARIES)}, "
                             f"not {self.config['boundaries']!r}")
        if int(self.config["members"]) > 1 and self.config["boundaries"] == "argmax":
            raise TaposError("transparser: members > 1 needs boundaries='change' or 'count' (the argmax patterns "
                             "of separately trained models are numbered differently); --preset ensemble sets both")
        self.others: list = []  # the ensemble's members after the first (which is self.model)
        self.count_model = None  # with boundaries="count": (a, b) of tapos.parse.count

    def relevant_options(self) -> tuple:
        """min_segment smooths the argmax patterns, threshold cuts the change score: each matters
        with its own readout only (neither with the count readout)."""
        unused = self.UNUSED[self.config["boundaries"]]
        return tuple(k for k in self.TUNABLE if k not in unused)

    def fit(self, train, val=None, opts=None) -> list:
        """One model, or ``members`` models trained with seeds ``seed * members + i``, each choosing
        its epoch on the selection split; the "auto" options are then tuned once, on the ensemble."""
        opts = opts or FitOptions()
        if self.config["boundaries"] == "count":  # from the annotations alone: before the epochs score dev
            self.count_model = fit_count_model(train)
        n = int(self.config["members"])
        if n == 1:
            return super().fit(train, val, opts)
        config, models, history = dict(self.config), [], []
        for i in range(n):
            self.config, self.others = dict(config), []

            def tag(row, i=i):
                row["member"] = i
                if opts.on_epoch:
                    opts.on_epoch(row)
            history += super().fit(train, val, replace(opts, seed=opts.seed * n + i, on_epoch=tag))
            models.append(self.model)
        row = {"epoch": history[-1]["epoch"], "member": "ensemble", "best": True}
        for key, (value, scores) in self.assemble(models, config, val).items():
            row.update({f"tuned_{key}": value, **{f"tuned_{k}": v for k, v in scores.items()}})
        if val is not None:
            row.update(validation_scores(self, val))  # the ensemble's own scores on the selection split
        history.append(row)
        if opts.on_epoch:
            opts.on_epoch(row)
        return history

    def assemble(self, models: list, config: dict, val=None) -> dict:
        """Make this parser the ensemble of ``models`` (trained members; the first becomes
        ``self.model``) with ``config`` as given before training: its "auto" options are tuned once,
        on the ensemble, with ``val`` (the selection split). Returns :meth:`tune`'s choices."""
        self.config = {**config, "members": len(models)}
        self.model, self.others = models[0], list(models[1:])
        return self.tune(val)

    def build_model(self) -> nn.Module:
        return TransParserNet(self.dim, self.num_classes, self.config)

    def losses(self, model, batch) -> dict:
        f, att = model(batch["x"])
        # global loss: NLL of the class from the mean over each instance's frames of W f''_t
        logits = model.classifier(f)
        B = len(batch["lengths"])
        mean_logits = torch.zeros(B, logits.shape[1], device=logits.device).index_add_(0, batch["inst"], logits)
        mean_logits = mean_logits / batch["lengths"].to(logits.device)[:, None].float()
        actions = batch["actions"].to(logits.device)
        known = actions != UNKNOWN_ACTION  # instances converted from a file without classes
        l_global = (F.cross_entropy(mean_logits[known], actions[known]) if known.any()
                    else mean_logits.sum() * 0.0)
        terms = {"global": l_global}
        loss = self.config["global_weight"] * l_global
        if self.config["local_loss"]:
            locs, sims, dissims = [], [], []
            offsets = batch["offsets"].tolist()
            cap = self.config["local_max_frames"]
            for i in range(B):
                s, e = offsets[i], offsets[i + 1]
                idx = torch.arange(s, e, device=att.device)
                if e - s > cap:
                    idx = idx[torch.randperm(e - s, device=att.device)[:cap]]
                out = local_loss(att[idx], batch["seg"][idx], self.config["lambda"])
                if out is not None:
                    locs.append(out[0])
                    sims.append(out[1].detach())
                    dissims.append(out[2].detach())
            if locs:
                l_local = torch.stack(locs).mean()
                loss = loss + l_local
                terms.update({"local": l_local, "sim": torch.stack(sims).mean(), "dissim": torch.stack(dissims).mean()})
        terms["loss"] = loss
        return terms

    def _forward(self, features: np.ndarray):
        return self.infer(self.transform(features))

    def patterns(self, features: np.ndarray) -> np.ndarray:
        """The last unit's attention ``(T, m)`` over the rows of its pattern miner."""
        return self._forward(features)[1].cpu().numpy()

    def class_logits(self, features: np.ndarray) -> np.ndarray:
        """``W f''_t`` per row: the global loss classifies an instance by their mean."""
        f, _ = self._forward(features)
        with torch.inference_mode():
            return self.model.classifier(f).cpu().numpy()

    def frame_labels(self, x: np.ndarray) -> np.ndarray:
        """The pattern each row attends to most (argmax of the last unit's attention)."""
        return self.infer(x)[1].argmax(-1).cpu().numpy()

    def change_score(self, x: np.ndarray) -> np.ndarray:
        """Per row, how much the attention changes there: half the L1 distance between the mean
        attention of the ``window`` rows before and of the rows from it on (0..1), averaged over the
        ensemble's members."""
        w = int(self.config["window"])
        scores = []
        for model in [self.model, *self.others]:
            att = self.infer(x, model)[1].cpu().numpy()
            before, after = window_means(att, w)
            s = 0.5 * np.abs(before - after).sum(1)
            s[0] = 0.0
            scores.append(s)
        return np.mean(scores, axis=0)

    def boundary_rows(self, x: np.ndarray) -> np.ndarray:
        if self.config["boundaries"] == "argmax":
            return super().boundary_rows(x)
        if self.config["boundaries"] == "count":
            k = expected_count(self.count_model, len(x))
            return top_peaks(self.change_score(x), k, int(self.config["window"]))
        return pick_peaks(self.change_score(x), float(self.option("threshold")), int(self.config["window"]))

    def pattern_labels(self, features: np.ndarray, responses=None) -> np.ndarray:
        """With ``boundaries="change"``: each predicted sub-action labelled with the pattern its rows
        attend to most on average (the first member's), so the labels change only at boundaries."""
        resp = self.patterns(features) if responses is None else responses
        if self.config["boundaries"] == "argmax":
            return super().pattern_labels(features, resp)
        return segment_labels(resp, self.boundary_rows(self.transform(features)).tolist())

    def extra_state(self) -> dict:
        state = super().extra_state()
        if self.count_model is not None:
            state["count_model"] = torch.tensor(self.count_model, dtype=torch.float64)
        if self.others:
            state["others"] = [{k: v.detach().cpu() for k, v in m.state_dict().items()} for m in self.others]
        return state

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.count_model = tuple(state["count_model"].tolist()) if "count_model" in state else None
        self.others = []
        for sd in state.get("others", []):
            model = self.build_model()
            model.load_state_dict(sd)
            self.others.append(model.eval())
