"""tapos.tsn: a Temporal Segment Network whose segments follow sub-actions (paper sections 4 and 6.3).

Sampling schemes (TSN's uniform segments; segments aligned with annotated or parsed sub-actions;
your own: ``SamplingScheme`` and ``register_sampling``, in ``tapos.tsn.schemes``), the
TSN head on cached features with late fusion, training and evaluation (``tapos-tsn``).
"""
from .data import SnippetDataset
from .metrics import accuracy, fuse, scores_table
from .run import DEFAULTS, evaluate, load, train
from .sampling import aligned_indices, segments_from_boundaries, uniform_indices
from .schemes import SAMPLINGS, SamplingScheme, get_sampling, register_sampling

__all__ = ["SAMPLINGS", "SamplingScheme", "get_sampling", "register_sampling", "SnippetDataset", "accuracy", "fuse",
           "scores_table", "DEFAULTS", "evaluate", "load", "train", "aligned_indices", "segments_from_boundaries",
           "uniform_indices"]
