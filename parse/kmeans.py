"""k-means baseline (paper Table 2, k = 64): cluster the frame features of the training split;
a new sub-action starts where a frame's cluster differs from the previous frame's."""
from __future__ import annotations

import numpy as np
import torch

from .base import FitOptions, LabellingParser, fit_once
from .registry import register


@register
class KMeansParser(LabellingParser):
    name = "kmeans"
    supervision = "none"  # clusters the features alone (min_segment="auto" reads dev only when asked)
    DEFAULTS = {
        "k": 64,              # clusters (the paper's k = 64)
        "passes": 2,          # streaming passes of MiniBatchKMeans over the training frames
        "chunk_frames": 8192,  # frames per partial_fit step (bounds memory at any dataset size)
        **LabellingParser.LABELLING_DEFAULTS,
    }
    PRESETS = {"paper": {"k": 64, "min_segment": 1}}  # a new sub-action wherever the cluster changes

    def __init__(self, **config):
        super().__init__(**config)
        self.centers = None

    def fit(self, train, val=None, opts=None) -> list:
        from sklearn.cluster import MiniBatchKMeans
        from tqdm import tqdm

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
                for i in tqdm(order, desc=f"kmeans pass {p + 1}", unit="inst", disable=not opts.progress, leave=False):
                    x = self.transform(train[int(i)]["features"].numpy())
                    buf.append(x)
                    n += len(x)
                    if n >= chunk_min:
                        km.partial_fit(np.concatenate(buf))
                        buf, n = [], 0
                if n >= k:  # the pass's remainder, when it is enough for a step
                    km.partial_fit(np.concatenate(buf))
            if not hasattr(km, "cluster_centers_"):
                from tapos.data.errors import TaposError

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
