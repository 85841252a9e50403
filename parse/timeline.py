"""``tapos-parse show``: one annotated instance as a timeline strip (figures.plot_timeline)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from tapos.data.annotations import Annotations, load_annotations
from tapos.data.clock import frames_to_seconds
from tapos.data.machinery.dataset import FeatureDataset
from tapos.data.errors import TaposError
from tapos.data.features import FeatureReader

from .checkpoint import load_model
from .figures import plot_timeline
from .segments import spans


def segment_centres(bounds, duration: float, limit: int = 12) -> list:
    """Centres of the segments that ``bounds`` (seconds) cut ``[0, duration)`` into, in time
    order; of the ``limit`` longest when there are more (a filmstrip stays legible)."""
    segs = spans([float(b) for b in bounds], float(duration))
    if len(segs) > limit:
        segs = sorted(sorted(segs, key=lambda s: s[0] - s[1])[:limit])
    return [(a + b) / 2 for a, b in segs]


def show_instance(model_dir, features, annotations, key: Optional[str], out, videos=None) -> dict:
    """Draw instance ``key`` (default: the first val instance; annotated and predicted segments,
    patterns, thumbnails with ``videos``) to the PNG ``out``; returns its boundaries in seconds."""
    parser, modality = load_model(model_dir)
    ann = load_annotations(annotations)
    if key is None:
        key = next(iter(ann.split("val") or ann), None)
    if key not in ann:
        raise TaposError(f"{ann.path}: no instance {key!r}")
    inst = ann[key]
    reader = FeatureReader(features)
    if key not in reader:
        raise TaposError(f"{features}: no features for instance {key!r}")
    item = FeatureDataset(reader, Annotations([inst], ann.path), "all", modality)[0]
    x, frames = item["features"].numpy(), item["frames"].numpy()
    predicted = frames_to_seconds(parser.predict(x, frames, inst), inst.fps)
    truth = inst.boundaries_seconds()
    responses = parser.patterns(x)
    labels = parser.pattern_labels(x, responses) if responses is not None else None
    thumbs = None
    if videos is not None:
        from .thumbnails import Thumbnailer

        shot = Thumbnailer(videos)
        thumbs = [(c, img) for c in segment_centres(predicted, inst.duration)
                  if (img := shot(inst, c)) is not None]
        if shot.failures:
            raise TaposError(shot.failures[0])
    plot_timeline(out, frames_to_seconds(frames, inst.fps), inst.duration, predicted, truth, responses, labels, thumbs,
                  f"{key}  (class {inst.action}, {parser.name} on {modality})")
    return {"key": key, "predicted": [float(b) for b in predicted], "annotated": truth, "out": str(Path(out))}
