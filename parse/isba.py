"""ISBA, iterative soft boundary assignment (paper section 6.2, after Ding & Xu 2018), adapted to
parsing with pseudo transcripts: the mean features of the annotated training segments are grouped
into K clusters, and an instance's transcript is the ordered list of its segments' clusters
(weak supervision: the order, not the timing). A temporal convolution classifier is trained on
frame targets from the current boundaries, softened around each boundary; the boundaries start
uniform and are re-assigned ``rounds`` times, each boundary moving to where the classifier's
log-likelihood of the transcript, split there, is highest. Inference: the classifier's argmax
label per frame; a new sub-action starts where it changes."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import LabellingParser, TorchParser
from .registry import register
from .tcn import TemporalConvNet


def soft_targets(T: int, bounds, labels, k: int, width: float) -> torch.Tensor:
    """Frame targets (T, k): each segment's label, blended linearly with the next one's over
    ``width`` x the shorter segment's length on both sides of their boundary."""
    y = torch.zeros(T, k)
    edges = [0, *bounds, T]
    for j, lab in enumerate(labels):
        y[edges[j]:edges[j + 1], lab] = 1.0
    t = torch.arange(T, dtype=torch.float32)
    for j, b in enumerate(bounds):
        w = max(1.0, width * min(edges[j + 1] - edges[j], edges[j + 2] - edges[j + 1]))
        nxt = ((t - b) / (2 * w) + 0.5).clamp(0, 1)  # weight of the next segment's label
        zone = (t >= b - w) & (t < b + w)
        mix = torch.zeros(T, k)
        mix[:, labels[j]] = 1 - nxt
        mix[:, labels[j + 1]] += nxt
        y[zone] = mix[zone]
    return y


def reassign(log_probs: np.ndarray, bounds: list, labels: list) -> list:
    """Move each boundary, in order, to the split of its two neighbouring segments that maximizes
    the summed log-probability of their transcript labels."""
    bounds = list(bounds)
    T = len(log_probs)
    for j in range(len(bounds)):
        lo = (bounds[j - 1] if j else 0) + 1
        hi = (bounds[j + 1] if j + 1 < len(bounds) else T) - 1
        if hi < lo:
            continue
        a = np.cumsum(log_probs[lo - 1:hi + 1, labels[j]])
        b = np.cumsum(log_probs[lo - 1:hi + 1, labels[j + 1]][::-1])[::-1]
        # split at t: rows [lo-1, t) take labels[j], rows [t, hi] take labels[j + 1]
        cand = np.arange(lo, hi + 1)
        score = a[cand - lo] + b[cand - lo + 1]
        bounds[j] = int(cand[int(np.argmax(score))])
    return bounds


FRAME_SAMPLE = 50000  # frames clustered for the "frames" transcripts (a sample of larger splits)


@register
class ISBAParser(LabellingParser, TorchParser):
    name = "isba"
    supervision = "boundaries"  # the annotated segments give the pseudo transcripts
    DEFAULTS = {
        **TorchParser.DEFAULTS,
        "k": 64,            # K clusters of segment features: the pseudo sub-action labels
        "hidden": 256,      # channels of the classifier's first convolution
        "kernel": 5,        # temporal kernel of the classifier
        "dropout": 0.3,
        "rounds": 3,        # boundary re-assignments (spread evenly over the epochs)
        "soft_width": 0.1,  # blend around a boundary, fraction of the shorter segment
        "transcripts": "segments",  # pseudo transcripts from "segments" (K clusters of the annotated
                                    # segments' mean features: our deviation) or "frames" (K clusters of
                                    # frame features, a segment labelled by its most frequent cluster:
                                    # the paper's pre-grouping)
        **LabellingParser.LABELLING_DEFAULTS,
    }
    PRESETS = {"paper": {"transcripts": "frames", "min_segment": 1}}

    def __init__(self, **config):
        super().__init__(**config)
        self.transcripts: dict = {}
        self.bounds: dict = {}

    def build_model(self) -> nn.Module:
        return TemporalConvNet(self.dim, self.config["hidden"], self.config["kernel"], self.config["k"],
                               self.config["dropout"])

    def _pseudo_transcripts(self, train) -> None:
        """Each training instance's transcript (the clusters of its annotated segments, in order)
        and uniform initial boundaries. Streams the training split: no more than one instance's
        rows at a time besides what the clustering needs (the segments' means, or a sample of at
        most ``FRAME_SAMPLE`` frames), so memory does not grow with the split's frames (holding
        every row was 29 GB at TAPOS scale, 2,048-d)."""
        from sklearn.cluster import KMeans

        frames = self.config["transcripts"] == "frames"
        keys, means, lengths, kept, total = [], [], {}, [], 0  # per segment: its instance, its mean
        for x, key, spans in self._segments(train):
            lengths[key] = len(x)
            keys += [key] * len(spans)
            if frames:
                if total + len(x) <= FRAME_SAMPLE:  # small splits: every frame, as they come
                    kept += [x[a:b] for a, b in spans]
                total += len(x)
            else:
                means += [x[a:b].mean(0) for a, b in spans]
        if frames:
            k = int(self.config["k"])
            if total <= FRAME_SAMPLE:
                rows = np.concatenate(kept)
                km = KMeans(n_clusters=min(k, len(rows)), n_init=3, random_state=0).fit(rows)
                labels = [int(np.bincount(km.predict(r)).argmax()) for r in kept]
            else:  # the clusters need a sample, not every frame: the same draw over all frames in order
                pick = np.random.default_rng(0).choice(total, FRAME_SAMPLE, replace=False)
                order = np.argsort(pick)
                rows, start, m = None, 0, 0
                for x, _, _ in self._segments(train):
                    while m < len(order) and pick[order[m]] < start + len(x):
                        if rows is None:
                            rows = np.empty((FRAME_SAMPLE, x.shape[1]), dtype=x.dtype)
                        rows[order[m]] = x[pick[order[m]] - start]
                        m += 1
                    start += len(x)
                km = KMeans(n_clusters=min(k, len(rows)), n_init=3, random_state=0).fit(rows)
                labels = [int(np.bincount(km.predict(x[a:b])).argmax())
                          for x, _, spans in self._segments(train) for a, b in spans]
        else:
            means = np.stack(means)
            labels = KMeans(n_clusters=min(int(self.config["k"]), len(means)), n_init=3,
                            random_state=0).fit_predict(means)
        self.transcripts = {}
        for key, lab in zip(keys, labels):
            self.transcripts.setdefault(key, []).append(int(lab))
        self.bounds = {}  # uniform initial boundaries
        for key, labs in self.transcripts.items():
            n = len(labs)
            self.bounds[key] = [int(round(lengths[key] * j / n)) for j in range(1, n)]

    def _segments(self, train):
        """Per training instance: its normalized rows, its key and its annotated segments' non-empty
        ``(start, end)`` row spans."""
        for i in range(len(train)):
            item = train[i]
            x = self.transform(item["features"].numpy())
            edges = [0, *item["row_boundaries"].tolist(), len(x)]
            yield x, item["key"], [(edges[j], edges[j + 1]) for j in range(len(edges) - 1) if edges[j + 1] > edges[j]]

    def start_epoch(self, epoch: int, epochs: int, train) -> None:
        if epoch == 1:
            self._pseudo_transcripts(train)
            return
        every = max(1, epochs // (int(self.config["rounds"]) + 1))
        if (epoch - 1) % every or (epoch - 1) // every > int(self.config["rounds"]):
            return
        self.model.eval()
        with torch.inference_mode():
            for i in range(len(train)):
                item = train[i]
                key = item["key"]
                x = torch.from_numpy(self.transform(item["features"].numpy()))
                lp = F.log_softmax(self.model(x.to(next(self.model.parameters()).device)), -1).cpu().numpy()
                self.bounds[key] = reassign(lp, self.bounds[key], self.transcripts[key])
        self.model.train()

    def losses(self, model, batch) -> dict:
        offsets = batch["offsets"].tolist()
        k = int(self.config["k"])
        losses = []
        for i, key in enumerate(batch["keys"]):
            s, e = offsets[i], offsets[i + 1]
            logits = model(batch["x"][s:e])
            y = soft_targets(e - s, self.bounds[key], self.transcripts[key], k, self.config["soft_width"])
            losses.append(-(y.to(logits.device) * F.log_softmax(logits, -1)).sum(-1).mean())
        loss = torch.stack(losses).mean()
        return {"loss": loss, "soft_ce": loss}

    def patterns(self, features: np.ndarray) -> np.ndarray:
        """The frame classifier's distribution over the K pseudo sub-actions."""
        return torch.softmax(self.infer(self.transform(features)), -1).cpu().numpy()

    def frame_labels(self, x: np.ndarray) -> np.ndarray:
        """The classifier's most likely pseudo sub-action of every row."""
        return self.infer(x).argmax(-1).cpu().numpy()
