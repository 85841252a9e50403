"""``tapos-parse video``: parse one video of your own with a trained model.

The clip's features are extracted by ``tapos.extract.extract_like`` with the settings of the cache
the model was trained on (recorded in its ``config.json``: weights, flow method, sampling), into
``OUT/features.h5`` (so a second run reuses them); the model predicts the sub-actions, written to
``OUT/boundaries.json`` (frames of the clip and seconds) and drawn to ``OUT/timeline.png``.
"""
from __future__ import annotations

import json
from pathlib import Path

from tapos.data.clock import frames_to_seconds, row_frames, seconds_to_frames
from tapos.data.errors import TaposError
from tapos.data.machinery.ffmpeg import probe, read_frame_at
from tapos.data.features import ExtractionSettings, parse_modality
from tapos.data.io import atomic_write_text
from tapos.extract import FEATURE_DIM, Reference, extract_like

from .checkpoint import load_model
from .figures import plot_timeline
from .segments import spans
from .timeline import segment_centres


def recorded_cache(model_dir) -> Reference:
    """How the model's training cache was made (its ``config.json`` records it), as the
    reference :func:`tapos.extract.extract_like` extracts a clip like."""
    model_dir = Path(model_dir)
    path = model_dir / "config.json" if model_dir.is_dir() else model_dir.with_name("config.json")
    try:
        doc = json.loads(path.read_text()).get("feature_cache", {}) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        doc = {}
    cache = ExtractionSettings.from_attrs(doc) if doc else ExtractionSettings(backbone="bninception")
    if cache.backbone != "bninception":
        raise TaposError(f"{model_dir}: the model was trained on {cache.backbone} features, not on tapos-extract "
                         f"(bninception) features; parsing a video needs a model trained on a tapos-extract cache")
    return Reference(cache, where=str(model_dir), holds="the model was trained on")


def _frame(seconds: float, rate: float) -> float:
    """A segment edge in the clip's frames, rounded to 6 decimals."""
    return round(float(seconds_to_frames(seconds, rate)), 6)


def parse_video(clip, model_dir, out_dir, device: str = "cpu", progress: bool = True, thumbnails: bool = True,
                overwrite: bool = False, **extraction) -> dict:
    """Extract, parse and draw one clip; returns what ``OUT/boundaries.json`` holds. ``extraction``
    overrides the training cache's settings (``weights``, ``flow_weights``, ``flow``, ``stride``,
    ``fps``); ``overwrite`` re-extracts features already in ``OUT/features.h5`` (needed when the
    settings changed)."""
    clip, out = Path(clip), Path(out_dir)
    if not clip.is_file():
        raise TaposError(f"{clip}: no such file")
    parser, modality = load_model(model_dir)
    modalities = parse_modality(modality)
    if parser.dim is not None and parser.dim != FEATURE_DIM * len(modalities):
        raise TaposError(f"{model_dir}: the model takes {parser.dim}-d {modality} features but tapos-extract gives "
                         f"{FEATURE_DIM} per modality ({FEATURE_DIM * len(modalities)} for {modality}): it was not "
                         f"trained on tapos-extract features")
    like = recorded_cache(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    got = extract_like(clip, like, out / "features.h5", device=device, progress=progress, overwrite=overwrite,
                       modalities=modalities, **extraction)
    if len(got.features) < 2:
        raise TaposError(f"{clip}: only {len(got.features)} frame(s) after sampling ({got.info.duration:.2f} s); "
                         f"parsing needs at least 2 (use a longer clip or a higher --fps)")
    result, seconds = _boundaries(clip, got, parser, modality)
    atomic_write_text(out / "boundaries.json", json.dumps(result, indent=1))
    _draw(out / "timeline.png", clip, got, parser, modality, seconds, thumbnails)
    return result


def _boundaries(clip: Path, got, parser, modality: str) -> tuple:
    """``(what boundaries.json holds, the boundaries in seconds)``: the predicted boundaries in
    frames of the clip and seconds."""
    clip_fps, duration = got.info.frame_rate, got.info.duration
    frames = parser.predict(got.features, row_frames(got.timestamps, clip_fps))
    seconds = frames_to_seconds(frames, clip_fps)
    return {
        "clip": str(clip), "key": got.key, "method": parser.name, "modality": modality, "fps": clip_fps,
        "num_frames": got.info.num_frames, "duration": duration,
        "boundaries_frames": [float(f) for f in frames], "boundaries_seconds": [float(s) for s in seconds],
        "segments": [{"start": a, "end": b, "start_frame": _frame(a, clip_fps), "end_frame": _frame(b, clip_fps)}
                     for a, b in spans(seconds.tolist(), duration)],
        "extraction": {k: v for k, v in got.options.items() if k != "modalities"},
    }, seconds


def _draw(path: Path, clip: Path, got, parser, modality: str, seconds, thumbnails: bool) -> None:
    """The timeline: segments, patterns and (with ``thumbnails``) a frame of each segment."""
    x, duration = got.features, got.info.duration
    responses = parser.patterns(x)
    labels = parser.pattern_labels(x, responses) if responses is not None else None
    thumbs = None
    if thumbnails:
        vinfo = probe(clip)
        thumbs = [(c, read_frame_at(clip, c, 96, vinfo)) for c in segment_centres(seconds, duration)]
    plot_timeline(path, got.timestamps, duration, seconds, None, responses, labels, thumbs,
                  f"{clip.name}  ({parser.name} on {modality})")
