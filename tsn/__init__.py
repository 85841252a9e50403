"""tapos.tsn: a Temporal Segment Network whose segments follow sub-actions (paper sections 4 and 6.3).

Samplers (TSN's uniform segments; segments aligned with annotated or parsed sub-actions), the
TSN head on cached features with late fusion, training and evaluation (``tapos-tsn``).
"""
from .data import SAMPLINGS, SnippetDataset
from .metrics import accuracy, fuse, scores_table
from .run import DEFAULTS, evaluate, load, train
from .sampling import aligned_indices, segments_from_boundaries, uniform_indices

__all__ = ["SAMPLINGS", "SnippetDataset", "accuracy", "fuse", "scores_table", "DEFAULTS", "evaluate", "load",
           "train", "aligned_indices", "segments_from_boundaries", "uniform_indices"]
