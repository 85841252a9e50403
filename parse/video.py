"""``tapos-parse video``: parse one video of your own with a trained model.

The clip's features are extracted by ``tapos.extract`` with the settings of the cache the model was
trained on (recorded in its ``config.json``: weights, flow method, sampling), into
``OUT/features.h5`` (so a second run reuses them); the model predicts the sub-actions, written to
``OUT/boundaries.json`` (frames of the clip and seconds) and drawn to ``OUT/timeline.png``.
"""
from __future__ import annotations

import json
from pathlib import Path

from tapos.data.clock import frames_to_seconds, row_frames, seconds_to_frames
from tapos.data.errors import TaposError
from tapos.data.machinery.ffmpeg import probe, read_frame_at
from tapos.data.features import ExtractionSettings, FeatureReader, parse_modality
from tapos.data.io import atomic_write_text
from tapos.data.videos import Clip
from tapos.extract import CROSS_MODALITY, FEATURE_DIM, extract, resolve_weights, weights_spec

from .checkpoint import load_model
from .figures import plot_timeline
from .segments import spans
from .timeline import segment_centres


def _recorded(model_dir: Path) -> ExtractionSettings:
    """How the model's training cache was made (its ``config.json`` records it)."""
    path = model_dir / "config.json" if model_dir.is_dir() else model_dir.with_name("config.json")
    try:
        doc = json.loads(path.read_text()).get("feature_cache", {}) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        doc = {}
    return ExtractionSettings.from_attrs(doc) if doc else ExtractionSettings(backbone="bninception")


def extraction_options(model_dir, modalities, weights=None, flow_weights=None, flow=None, stride=None,
                       fps=None) -> dict:
    """``tapos.extract`` options reproducing the model's training cache; arguments override the
    recorded values, and weights that differ from the recorded ones are refused."""
    model_dir = Path(model_dir)
    cache = _recorded(model_dir)
    if cache.backbone != "bninception":
        raise TaposError(f"{model_dir}: the model was trained on {cache.backbone} features, not on tapos-extract "
                         f"(bninception) features; parsing a video needs a model trained on a tapos-extract cache")
    recorded = cache.weights
    if weights is None:
        desc = recorded.get("rgb") or recorded.get("flow")
        weights = weights_spec(desc) if desc else "imagenet"
        if weights is None:
            raise TaposError(f"{model_dir}: its features were extracted with weights {desc!r}; "
                             f"pass that file with --weights PATH")
    if flow_weights is None and "flow" in modalities and not recorded.get("flow", "").endswith(CROSS_MODALITY):
        if "flow" in recorded and weights_spec(recorded["flow"]) != weights:
            flow_weights = weights_spec(recorded["flow"])
            if flow_weights is None:
                raise TaposError(f"{model_dir}: its flow features were extracted with weights {recorded['flow']!r}; "
                                 f"pass that file with --flow-weights PATH")
    for m in modalities:  # the features must come from the same network as the training cache's
        if m in recorded:
            spec = (flow_weights or weights) if m == "flow" else weights
            _, desc = resolve_weights(spec, m)
            if desc != recorded[m]:
                raise TaposError(f"--weights {spec}: gives {m} weights {desc!r} but the model was trained on "
                                 f"features from {recorded[m]!r}")
    opts = {"modalities": tuple(modalities), "weights": weights, "flow_weights": flow_weights}
    opts["flow"] = flow or cache.flow or "tvl1"
    recorded_flow = (cache.flow_params or {}).get("parameters") if cache.flow == opts["flow"] else None
    if isinstance(recorded_flow, dict):  # a method with parameters of its own (tvl1-torch): the cache's
        opts["flow_options"] = dict(recorded_flow)
    if stride is None and fps is None:
        stride, fps = (1, cache.fps) if cache.fps else (cache.stride, None)
    opts["stride"], opts["fps"] = stride or 1, fps
    return opts


def _frame(seconds: float, rate: float) -> float:
    """A segment edge in the clip's frames, rounded to 6 decimals."""
    return round(float(seconds_to_frames(seconds, rate)), 6)


def parse_video(clip, model_dir, out_dir, weights=None, flow_weights=None, flow=None, stride=None, fps=None,
                device: str = "cpu", progress: bool = True, thumbnails: bool = True, overwrite: bool = False) -> dict:
    """Extract, parse and draw one clip; returns what ``OUT/boundaries.json`` holds. ``overwrite``
    re-extracts features already in ``OUT/features.h5`` (needed when the settings changed)."""
    clip, out = Path(clip), Path(out_dir)
    if not clip.is_file():
        raise TaposError(f"{clip}: no such file")
    parser, modality = load_model(model_dir)
    modalities = parse_modality(modality)
    if parser.dim is not None and parser.dim != FEATURE_DIM * len(modalities):
        raise TaposError(f"{model_dir}: the model takes {parser.dim}-d {modality} features but tapos-extract gives "
                         f"{FEATURE_DIM} per modality ({FEATURE_DIM * len(modalities)} for {modality}): it was not "
                         f"trained on tapos-extract features")
    opts = extraction_options(model_dir, modalities, weights, flow_weights, flow, stride, fps)
    out.mkdir(parents=True, exist_ok=True)
    key = clip.stem
    report = extract(clip, out / "features.h5", clips=[Clip(key, clip)], device=device, progress=progress,
                     overwrite=overwrite, **opts)
    if report.failed:
        raise TaposError(f"{clip}: {report.failed[0][1]}")
    reader = FeatureReader(out / "features.h5")
    info = reader.info(key)
    x = reader.read(key, modality)
    if len(x) < 2:
        raise TaposError(f"{clip}: only {len(x)} frame(s) after sampling ({info.duration:.2f} s); parsing needs "
                         f"at least 2 (use a longer clip or a higher --fps)")
    times = reader.timestamps(key)
    clip_fps, duration = info.frame_rate, info.duration
    frames = parser.predict(x, row_frames(times, clip_fps))
    seconds = frames_to_seconds(frames, clip_fps)
    result = {
        "clip": str(clip), "key": key, "method": parser.name, "modality": modality, "fps": clip_fps,
        "num_frames": info.num_frames, "duration": duration,
        "boundaries_frames": [float(f) for f in frames], "boundaries_seconds": [float(s) for s in seconds],
        "segments": [{"start": a, "end": b, "start_frame": _frame(a, clip_fps), "end_frame": _frame(b, clip_fps)}
                     for a, b in spans(seconds.tolist(), duration)],
        "extraction": {k: v for k, v in opts.items() if k != "modalities"},
    }
    atomic_write_text(out / "boundaries.json", json.dumps(result, indent=1))
    responses = parser.patterns(x)
    labels = parser.pattern_labels(x, responses) if responses is not None else None
    thumbs = None
    if thumbnails:
        vinfo = probe(clip)
        thumbs = [(c, read_frame_at(clip, c, 96, vinfo)) for c in segment_centres(seconds, duration)]
    plot_timeline(out / "timeline.png", times, duration, seconds, None, responses, labels, thumbs,
                  f"{clip.name}  ({parser.name} on {modality})")
    return result
