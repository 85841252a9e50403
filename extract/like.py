"""A new video's features made exactly like an existing cache's: a model trained on a cache
(``tapos-parse video``) must see a clip through the same network weights, flow method and
sampling, or its predictions mean nothing.

    from tapos.extract import extract_like
    clip = extract_like("my_clip.mp4", "feats.h5", "my_clip/features.h5")   # like feats.h5
    clip.features, clip.timestamps                                         # (T, D), seconds
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from tapos.data.errors import TaposError
from tapos.data.features import ExtractionSettings, FeatureReader, InstanceInfo, parse_modality
from tapos.data.videos import Clip

from .pipeline import DEFAULTS, extract
from .weights import CROSS_MODALITY, resolve_weights, weights_spec


@dataclass(frozen=True)
class Reference:
    """The cache to extract like: how it was made, and how errors name it."""

    settings: ExtractionSettings
    where: str = "the cache"                    # the file or folder that recorded the settings
    holds: str = "the cache holds"              # "the model was trained on" (... features from X)


@dataclass
class ClipFeatures:
    """One clip extracted like a reference cache."""

    key: str
    features: np.ndarray     # (T, D) float32, the modalities concatenated in their order
    timestamps: np.ndarray   # seconds of each row
    info: InstanceInfo       # rows, rates, frame count and duration
    options: dict            # the tapos.extract options used
    cache: Path              # the cache holding them (a second call with the same options reuses them)


def reference(like) -> Reference:
    """A :class:`Reference` from itself, from :class:`ExtractionSettings`, or from a cache's path."""
    if isinstance(like, Reference):
        return like
    if isinstance(like, ExtractionSettings):
        return Reference(like)
    with FeatureReader(like) as reader:
        return Reference(reader.settings(), where=str(like))


def options_like(like, modalities=None, weights=None, flow_weights=None, flow=None, stride=None,
                 fps=None) -> dict:
    """The :func:`extract` options that reproduce ``like`` (see :func:`reference`); arguments
    override the recorded values, and weights other than the recorded ones are refused."""
    ref = reference(like)
    cache = ref.settings
    if cache.backbone != "bninception":
        raise TaposError(f"{ref.where}: {ref.holds} {cache.backbone} features, not tapos-extract (bninception) "
                         f"features; only those can be extracted again")
    modalities = parse_modality(modalities or cache.modalities or DEFAULTS["modalities"])
    weights, flow_weights = _weights_like(ref, modalities, weights, flow_weights)
    opts = {"modalities": modalities, "weights": weights, "flow_weights": flow_weights}
    opts["flow"] = flow or cache.flow or "tvl1"
    recorded_flow = (cache.flow_params or {}).get("parameters") if cache.flow == opts["flow"] else None
    if isinstance(recorded_flow, dict):  # a method with parameters of its own (tvl1-torch): the cache's
        opts["flow_options"] = dict(recorded_flow)
    if stride is None and fps is None:
        stride, fps = (1, cache.fps) if cache.fps else (cache.stride, None)
    opts["stride"], opts["fps"] = stride or 1, fps
    return opts


def extract_like(video, like, out, device: str = "cpu", progress: bool = True, overwrite: bool = False,
                 **overrides) -> ClipFeatures:
    """Extract the clip ``video`` into the cache ``out`` exactly like ``like`` (a cache's path,
    its :class:`ExtractionSettings` or a :class:`Reference`); ``overrides`` are
    :func:`options_like`'s (``modalities``, ``weights``, ``flow``, ``stride``, ...). ``overwrite``
    redoes features already in ``out`` (needed when the settings changed). The clip's key is its
    file name without extension."""
    video = Path(video)
    opts = options_like(like, **overrides)
    key = video.stem
    report = extract(video, out, clips=[Clip(key, video)], device=device, progress=progress, overwrite=overwrite,
                     **opts)
    if report.failed:
        raise TaposError(f"{video}: {report.failed[0][1]}")
    with FeatureReader(out) as reader:
        info = reader.info(key)
        features = reader.read(key, "+".join(opts["modalities"]))
        return ClipFeatures(key, features, reader.timestamps(key), info, opts, Path(out))


def _weights_like(ref: Reference, modalities, weights: Optional[str], flow_weights: Optional[str]) -> tuple:
    """``(weights, flow_weights)``: the given ones, else those the reference was made with; the
    features must come from the same network as the reference's."""
    recorded = ref.settings.weights
    if weights is None:
        desc = recorded.get("rgb") or recorded.get("flow")
        weights = weights_spec(desc) if desc else "imagenet"
        if weights is None:
            raise TaposError(f"{ref.where}: its features were extracted with weights {desc!r}; "
                             f"pass that file with --weights PATH")
    if flow_weights is None and "flow" in modalities and not recorded.get("flow", "").endswith(CROSS_MODALITY):
        if "flow" in recorded and weights_spec(recorded["flow"]) != weights:
            flow_weights = weights_spec(recorded["flow"])
            if flow_weights is None:
                raise TaposError(f"{ref.where}: its flow features were extracted with weights {recorded['flow']!r}; "
                                 f"pass that file with --flow-weights PATH")
    for m in modalities:
        if m in recorded:
            spec = (flow_weights or weights) if m == "flow" else weights
            _, desc = resolve_weights(spec, m)
            if desc != recorded[m]:
                raise TaposError(f"--weights {spec}: gives {m} weights {desc!r} but {ref.holds} features from "
                                 f"{recorded[m]!r}")
    return weights, flow_weights
