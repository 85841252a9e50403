"""k-means baseline (paper Table 2, k = 64): cluster the frame features of the training split;
a new sub-action starts where a frame's cluster differs from the previous frame's, after runs
shorter than ``min_segment`` are merged into a neighbour.

Without a selection split (label-free, the default) ``min_segment`` is one second: the nearest
cluster flickers from row to row, and the former fallback, 1 (no smoothing, the paper's), gave
30-85 boundaries per instance on TAPOS's structure against 2.3 true (see :mod:`tapos.parse.lengths`)."""
from __future__ import annotations

import numpy as np
import torch

from tapos.data.errors import TaposError
from tapos.data.machinery.progress import track

from .base import FitOptions, LabellingParser, fit_once
from .lengths import check_length, length_rows
from .registry import register
from .segments import merge_short_segments


@register
class KMeansParser(LabellingParser):
    name = "kmeans"
    supervision = "none"  # clusters the features alone (min_segment="auto" reads dev only when asked)
    DEFAULTS = {
        "k": 64,              # clusters (the paper's k = 64)
        "passes": 2,          # streaming passes of MiniBatchKMeans over the training frames
        "chunk_frames": 8192,  # frames per partial_fit step (bounds memory at any dataset size)
        **LabellingParser.LABELLING_DEFAULTS,
        "min_segment": "auto",  # merge label runs shorter than this: seconds, a fraction 0 < f < 1 of the
                                # instance's rows or a whole number of rows (1 = off, the paper's);
                                # "auto": chosen on the selection split among TUNABLE, without one
                                # (label-free, the default) the first, "1s" (0.9x the true count on
                                # TAPOS's structure, correlation 0.63, train split)
    }
    # "1s" first: what a run without a selection split uses
    TUNABLE = {"min_segment": ("1s", "0.5s", "1.5s", 0.1, 1, 2, 3, 4, 6, 8)}
    PRESETS = {"paper": {"k": 64, "min_segment": 1}}  # a new sub-action wherever the cluster changes

    def __init__(self, **config):
        super().__init__(**config)
        if self.config["min_segment"] != "auto":
            check_length(self.name, "min_segment", self.config["min_segment"])
        self.centers = None

    def smooth(self, labels: np.ndarray) -> np.ndarray:
        """Label runs shorter than ``min_segment`` (rows, or that share of these rows) merged away."""
        return merge_short_segments(labels, length_rows(self.option("min_segment"), len(labels), rate=self.rate))

    def fit(self, train, val=None, opts=None) -> list:
        from sklearn.cluster import MiniBatchKMeans

        opts = opts or FitOptions()
        self.prepare(train, opts)
        k = int(self.config["k"])

        def run():
            km = MiniBatchKMeans(n_clusters=k, random_state=opts.seed, batch_size=max(1024, 3 * k), n_init=3)
            rng = np.random.default_rng(opts.seed)
            chunk_min = max(int(self.config["chunk_frames"]), 3 * k)
            for p in range(int(self.config["passes"])):
                buf, n = [], 0
                order = rng.permutation(len(train))
                for i in track(order, desc=f"kmeans pass {p + 1}", unit="inst", enabled=opts.progress, leave=False):
                    x = self.transform(train[int(i)]["features"].numpy())
                    buf.append(x)
                    n += len(x)
                    if n >= chunk_min:
                        km.partial_fit(np.concatenate(buf))
                        buf, n = [], 0
                if n >= k:  # the pass's remainder, when it is enough for a step
                    km.partial_fit(np.concatenate(buf))
            if not hasattr(km, "cluster_centers_"):
                raise TaposError(f"kmeans: the training split has fewer frames than k = {k}")
            self.centers = km.cluster_centers_.astype(np.float32)

        return fit_once(self, train, val, opts, run)

    def sq_distances(self, x: np.ndarray) -> np.ndarray:
        """Squared distances ``(T, k)`` of normalized rows to the centres."""
        return (x * x).sum(1, keepdims=True) - 2 * x @ self.centers.T + (self.centers * self.centers).sum(1)[None, :]

    def frame_labels(self, x: np.ndarray) -> np.ndarray:
        """The nearest centre of every row."""
        return self.sq_distances(x).argmin(1)

    def patterns(self, features: np.ndarray) -> np.ndarray:
        """Soft assignment to the k clusters: softmax of minus the squared distance over the
        feature width (the argmax is the nearest centre)."""
        from scipy.special import softmax

        x = self.transform(features)
        return softmax(-self.sq_distances(x) / x.shape[1], axis=1)

    def extra_state(self) -> dict:
        return {"centers": torch.from_numpy(self.centers)}

    def load_extra_state(self, state: dict) -> None:
        self.centers = state["centers"].numpy()
