"""Sampling schemes: ``@register_sampling`` adds one, ``SAMPLINGS`` maps names to them.

A scheme places a TSN's K snippets in an instance, given the boundaries it follows in rows (or
frames, for the frames TSN). Both datasets (:class:`tapos.tsn.data.SnippetDataset` on cached
features, :class:`tapos.tsn.frames.FrameSnippets` on video frames) and ``tapos-tsn --sampling``
use whatever is registered here.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from tapos.data.machinery.registry import Registry

from .sampling import aligned_indices, uniform_indices

SAMPLINGS = Registry("sampling")  # name -> the sampling (one instance of each registered class)
register_sampling = SAMPLINGS.register  # class decorator: the class's one instance under its ``name``


def get_sampling(name: str) -> "SamplingScheme":
    return SAMPLINGS.lookup(name)


class SamplingScheme:
    """Where a TSN takes its snippets. A subclass sets ``name`` and writes ``indices``."""

    name = ""
    summary = ""       # one phrase for --help
    predicted = False  # follows predicted boundaries (tapos-tsn --boundaries PRED.json), not the annotated ones

    def boundaries(self, instance, predicted: Optional[Mapping] = None) -> Sequence:
        """The boundaries it follows, in annotation frames: the instance's, or the predicted ones."""
        return predicted[instance.key] if self.predicted else instance.boundaries

    def indices(self, num_frames: int, boundaries: Sequence[int], num_segments: int, new_length: int, train: bool,
                rng: Optional[np.random.Generator]) -> np.ndarray:
        """``num_segments`` 0-based start indices in time order, snippets of ``new_length`` frames
        (rows) among ``num_frames``; ``boundaries``: the first row of each new sub-action. Train
        mode draws with ``rng``; test mode is deterministic."""
        raise NotImplementedError

    def label(self, boundaries_path=None) -> str:
        """Its row in results tables (a predicted one names the boundary file)."""
        return f"{self.name} ({boundaries_path.stem})" if self.predicted and boundaries_path else self.name


@register_sampling
class Uniform(SamplingScheme):
    name = "uniform"
    summary = "TSN's even segments"

    def indices(self, num_frames, boundaries, num_segments, new_length, train, rng):
        return uniform_indices(num_frames, num_segments, new_length, train, rng)


@register_sampling
class Aligned(SamplingScheme):
    name = "aligned"
    summary = "annotated sub-actions"

    def indices(self, num_frames, boundaries, num_segments, new_length, train, rng):
        return aligned_indices(num_frames, boundaries, num_segments, new_length, train, rng)


@register_sampling
class Parsed(Aligned):
    name = "parsed"
    summary = "predicted sub-actions, --boundaries"
    predicted = True
