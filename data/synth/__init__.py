"""A synthetic TAPOS-like dataset: annotations, features and videos, deterministic for a seed.

What makes it TAPOS-like (paper sections 3-4):

- A pool of sub-action *prototypes* is shared by all classes; each class has a typical ordered
  sequence of them (the same prototype can appear in several classes, and twice in one class, as
  the three jumps of a triple jump), with class-typical proportions. Instances vary the count
  (2-9 sub-actions, class-dependent), the proportions and the duration.
- Transitions are gradual (a smooth blend over part of each neighbouring segment), a sub-action's
  signature is strongest in its middle and drifts along it, and each class has a weak background.
- Features have temporally smooth drift, per-instance offsets and white noise; ``rgb`` and
  ``flow`` are two different non-linear projections of the same latent (flow sees less
  background). Because prototypes are shared, a class is identified mostly by *which* sub-actions
  occur in *what* order and proportion, which is the property the aligned-sampling study rests on.

The planted truth (class templates, prototype of every segment) is written to ``synth_truth.json``
so later stages can measure whether they recover shared sub-actions.

With ``like=[annotation files]`` (``tapos-data synth OUT --like FILE``) the generator draws no
structure of its own: every instance of the files (or ``max_instances`` of them per file) keeps
its frame count, frame rate, boundaries, split, ids and class, and only what is laid over that
structure (prototype sequences, latent, noise, camera moves, features, videos) is synthetic; see
:func:`generate`.
"""
from .dataset import SynthConfig, generate, write_dataset
from .world import DEFAULTS, PRESETS, SynthInstance

__all__ = ["DEFAULTS", "PRESETS", "SynthConfig", "SynthInstance", "generate", "write_dataset"]
