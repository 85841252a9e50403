"""Drawing a whole synthetic dataset (:func:`generate`) and writing it to a folder: annotations,
GEBD annotators, the planted truth, features and videos (:func:`write_dataset`)."""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import click
import numpy as np

from ..annotations import Instance, save_annotations
from ..clock import frames_to_seconds, seconds_to_frames
from ..errors import TaposError
from ..gebd import GebdVideo, save_gebd
from ..io import atomic_path, atomic_write_text
from ..options import Config, OptionError, apply_options, option

from .like import generate_like
from .world import DEFAULTS, PRESETS, SynthInstance, World, instance_features, instance_frames, instance_layout, youtube_id


def generate(n_instances: Optional[int] = None, n_classes: Optional[int] = None, seed: int = 0,
             preset: str = "default", like: Optional[Sequence] = None,
             max_instances: Union[None, int, Sequence] = None, **overrides):
    """Build the synthetic instances in memory. Returns ``(config, world, [SynthInstance])``.
    Settings: :data:`DEFAULTS`, then the :data:`PRESETS` entry ``preset``, then the counts and
    ``overrides``.

    ``like``: annotation files (TAPOS or GEBD layout) whose real structure the instances take
    instead of drawing their own (see :func:`generate_like`); ``max_instances``: at most this
    many instances per file (one number for every file, or one per file, ``None`` for all),
    drawn with the seeded generator. ``n_instances`` makes no sense then and is refused."""
    if preset not in PRESETS:
        raise OptionError(f"synthetic dataset: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    cfg = {**DEFAULTS, **PRESETS[preset]}
    if like:
        if n_instances is not None:
            raise TaposError("synthetic dataset: --instances cannot be used with --like "
                             "(the instances are those of the --like files; use --max-instances)")
    elif max_instances is not None:
        raise TaposError("synthetic dataset: --max-instances needs --like")
    if n_instances is not None:
        cfg["instances"] = n_instances
    if n_classes is not None:
        cfg["classes"] = n_classes
    cfg = apply_options(cfg, overrides, "synthetic dataset")
    cfg["seed"], cfg["preset"] = seed, preset
    if like:
        return generate_like(cfg, like, max_instances)
    rng = np.random.default_rng(seed)
    world = World(cfg, rng)
    n, C = cfg["instances"], cfg["classes"]
    per_video = max(1, cfg["instances_per_video"])
    n_videos = -(-n // per_video)
    val_videos = set(rng.choice(n_videos, size=int(round(cfg["val_fraction"] * n_videos)), replace=False).tolist())
    out, used_ids = [], set()
    for v in range(n_videos):
        yid = youtube_id(rng)
        while yid in used_ids:
            yid = youtube_id(rng)
        used_ids.add(yid)
        subset = "val" if v in val_videos else "train"
        fps = float(rng.choice(cfg["fps_choices"]))
        shot_start = round(float(rng.uniform(0, cfg["first_shot_max"])), 2)
        for i in range(min(per_video, n - len(out))):
            c = int(rng.integers(C))
            seq, props = instance_layout(cfg, world, c, rng)
            d0, d1 = cfg["duration_range"]
            duration = float(np.clip(world.mean_duration[c] * rng.lognormal(0, 0.2), d0, d1))
            min_frames = cfg["min_segment_frames"] * len(seq)
            duration = max(duration, float(frames_to_seconds(min_frames + 1, fps)))
            start_ms = int(rng.integers(0, 2000))
            end_ms = start_ms + int(round(duration * 1000))
            iid = f"s{i + 1:05d}_{start_ms // 1000}_{start_ms % 1000:03d}_{end_ms // 1000}_{end_ms % 1000:03d}"
            total = int(round(float(seconds_to_frames((end_ms - start_ms) / 1000.0, fps))))
            cuts = np.round(np.cumsum(props)[:-1] * total).astype(int)
            substages = [0]
            m = cfg["min_segment_frames"]
            for k, b in enumerate(cuts):  # keep every segment at least m frames long
                remaining = len(cuts) - k
                b = int(np.clip(b, substages[-1] + m, total - m * remaining))
                substages.append(b)
            substages.append(total)
            shot_end = round(shot_start + end_ms / 1000.0 + float(rng.uniform(0.5, 3.0)), 2)
            inst = Instance(yid, iid, c, subset, total, tuple(substages), (shot_start, shot_end))
            out.append(SynthInstance(inst, seq, fps))
            shot_start = shot_end  # the next shot follows this one in the source video
    return cfg, world, out



def _annotators(cfg, si: SynthInstance, rng) -> list:
    inst = si.instance
    dur = inst.duration
    base = np.asarray(inst.boundaries_seconds(), dtype=np.float64)
    anns = [base]
    for _ in range(1, cfg["annotators"]):
        keep = base[rng.random(len(base)) > 0.1]
        moved = keep + rng.normal(0, cfg["annotator_jitter"] * dur, size=len(keep))
        if rng.random() < 0.15:
            moved = np.append(moved, rng.uniform(0, dur))
        anns.append(np.sort(np.clip(moved, 0.01 * dur, 0.99 * dur)))
    return anns


def _source_frames(cfg, world, group, seeds):
    """One source video: the instances of ``group`` (sorted by start) at their times, dark frames
    between them, so that cutting ``shot_timestamps[0] + start`` finds each instance."""
    W, H = cfg["video_size"]
    fps = group[0].fps
    filler = np.full((H, W, 3), 16, np.uint8)
    frame = 0
    for si, ss in zip(group, seeds):
        first = int(round(float(seconds_to_frames(si.instance.start, fps))))
        while frame < first:
            yield filler
            frame += 1
        for img in instance_frames(cfg, world, si, np.random.default_rng(ss)):
            yield img
            frame += 1
    # the last shot runs to its end (a downloaded video holds every shot whole, and check-videos
    # checks that it does), then a second of tail, as cut shots rarely end a video
    shot_end = int(math.ceil(float(seconds_to_frames(group[-1].instance.shot_timestamps[1], fps))))
    for _ in range(max(0, shot_end - frame) + int(fps)):
        yield filler


@dataclass(frozen=True)
class SynthConfig(Config):
    """What :func:`write_dataset` writes (``tapos-data synth`` shows these). The generator's own
    settings are :data:`DEFAULTS`, overridden through ``settings`` (``--set``), ``dim`` and ``dtype``."""

    WHAT = "synthetic dataset"

    n_instances: Optional[int] = option(None, "Instances in total (default 240, or the preset's).", flag="--instances",
                                        type=click.IntRange(1))
    n_classes: Optional[int] = option(None, "Action classes (default 8, or the preset's).", flag="--classes",
                                      type=click.IntRange(1))
    seed: int = option(0, "Everything is deterministic for a seed.")
    features: bool = option(False, "Also write OUT/features.h5 (rgb and flow).", flag="--features/--no-features",
                            show_default=False)
    videos: bool = option(False, "Also render OUT/videos/<key>.mp4 with ffmpeg.", flag="--videos/--no-videos",
                          show_default=False)
    sources: bool = option(False, "Also render OUT/sources/<youtube_id>.mp4, the full videos the instances are cut "
                           "from (as TAPOS users download them; use --set first_shot_max=10 to keep them short).",
                           flag="--sources/--no-sources", show_default=False)
    dim: Optional[int] = option(None, "Feature dimension per modality (default 64).", type=click.IntRange(1))
    dtype: Optional[str] = option(None, "Feature dtype.", type=click.Choice(["float32", "float16"]))
    preset: str = option("default", "Named generator settings (tapos.data.synth.PRESETS): 'signature' is the TSN "
                         "benchmark's data, classes that differ only by a brief sub-action of their own (800 "
                         "instances).", type=click.Choice(list(PRESETS)))
    settings: dict = option({}, "Override any generator default (see tapos.data.synth.DEFAULTS), value as JSON.",
                            flag="--set", multiple=True, metavar="NAME=VALUE")
    like: Optional[list] = option(None, "Lay the synthetic content over the real structure of this annotation file "
                                  "(TAPOS json or GEBD .pkl/.json): its instances' frame counts, fps, boundaries, "
                                  "splits, ids and classes (drawn with TAPOS-like skewed sizes where the file has "
                                  "none). Repeatable; not with --instances or --sources.", multiple=True,
                                  type=click.Path(dir_okay=False, path_type=Path), metavar="ANNOTATIONS")
    max_instances: Union[None, int, list] = option(None, "With --like: at most N instances of the file, drawn with "
                                                   "the seed. Once for every --like, or once per --like in the same "
                                                   "order.", multiple=True, type=click.IntRange(1), metavar="N")
    stride: int = option(1, "The feature cache keeps every S-th frame, as tapos-extract --stride S writes it.",
                         type=click.IntRange(1))
    progress: bool = option(True, "Progress bars for features and videos.", cli=False)

    @classmethod
    def of(cls, values=None, /, **options) -> "SynthConfig":
        """As :meth:`Config.of`, and an option that is no field here is a generator setting
        (:data:`DEFAULTS`; ``video_size=[128, 96]``), added to ``settings``."""
        fields = cls.defaults()
        extra = {k: options.pop(k) for k in list(options) if k not in fields}
        config = super().of(values, **options)
        if not extra:
            return config
        apply_options(DEFAULTS, extra, cls.WHAT)
        return dataclasses.replace(config, settings={**config.settings, **extra})

    def overrides(self) -> dict:
        """The generator settings over DEFAULTS and the preset: ``settings``, then ``dim`` and ``dtype``."""
        return {**self.settings, **{k: getattr(self, k) for k in ("dim", "dtype") if getattr(self, k) is not None}}


def write_dataset(out_dir, n_instances: Optional[int] = None, n_classes: Optional[int] = None,
                  config: Optional[SynthConfig] = None, **options) -> dict:
    """Write the synthetic dataset to ``out_dir``; returns the paths written. ``config`` and/or
    keyword ``options``: :class:`SynthConfig` (``seed=0, features=True``) or generator settings
    (:data:`DEFAULTS`, ``first_shot_max=1.0``); ``n_instances``, ``n_classes`` may come first.

    Always: ``tapos_annotation.json`` (released layout), ``gebd_annotators.json`` (GEBD layout with
    several simulated annotators; they are all consistent, so ``f1_consis_avg`` is 1.0) and
    ``synth_truth.json`` (config, class templates, prototype of every segment). With ``features``:
    ``features.h5`` (schema tapos-features/1, one row per frame). With ``videos``:
    ``videos/<key>.mp4``. With ``sources``: ``sources/<youtube_id>.mp4``, the full source videos the
    instances are cut from (same frames as ``videos``; long unless ``first_shot_max`` is small).
    ``like``/``max_instances``: the real structure of annotation files (see :func:`generate`);
    ``sources`` is refused then. ``stride``: the cache keeps every ``stride``-th frame, as
    ``tapos-extract --stride`` writes it (its rows keep their frames and presentation times), so a
    run can be rehearsed on the cache a real extraction at that stride would give.
    """
    counts = {k: v for k, v in (("n_instances", n_instances), ("n_classes", n_classes)) if v is not None}
    config = SynthConfig.of(config, **counts, **options)
    if int(config.stride) != config.stride or config.stride < 1:
        raise TaposError(f"synthetic dataset: stride must be a positive integer, got {config.stride}")
    if config.like and config.sources:
        raise TaposError("synthetic dataset: --sources cannot be used with --like: the real shot layout (where "
                         "each instance lies in its source video) is not known for GEBD files")
    cfg, world, items = generate(config.n_instances, config.n_classes, config.seed, config.preset, like=config.like,
                                 max_instances=config.max_instances, **config.overrides())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"annotations": out_dir / "tapos_annotation.json"}
    save_annotations([si.instance for si in items], paths["annotations"])
    paths["gebd"] = out_dir / "gebd_annotators.json"
    _write_annotators(cfg, items, config.seed, paths["gebd"])
    truth = {
        "config": cfg,
        "templates": world.templates,
        "segments": {si.instance.key: si.protos for si in items},
    }
    paths["truth"] = out_dir / "synth_truth.json"
    atomic_write_text(paths["truth"], json.dumps(truth, indent=1))
    if config.features:
        paths["features"] = out_dir / "features.h5"
        _write_features(config, cfg, world, items, paths["features"])
    if config.videos or config.sources:
        paths.update(_write_videos(config, cfg, world, items, out_dir))
    return paths


def _write_annotators(cfg, items, seed: int, path) -> None:
    """``gebd_annotators.json``: the boundaries in GEBD layout, as several simulated annotators."""
    ann_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[0])
    gebd = []
    for si in items:
        inst = si.instance
        gebd.append(GebdVideo(inst.key, inst.duration, _annotators(cfg, si, ann_rng), inst.total_frames, inst.fps,
                              None, 1.0, {"action": inst.action, "subset": inst.subset}))
    save_gebd(gebd, path)


def _write_features(config: SynthConfig, cfg, world, items, path) -> None:
    """``features.h5``: every ``stride``-th frame of every instance (schema tapos-features/1)."""
    from ..features import ExtractionSettings, FeatureWriter
    from ..machinery.progress import track

    stride = config.stride
    feat_rngs = np.random.SeedSequence(config.seed + 1).spawn(len(items))
    settings = ExtractionSettings(backbone="synthetic", weights={"rgb": "none", "flow": "none"},
                                  modalities=("rgb", "flow"), dtype=cfg["dtype"], stride=stride)
    with atomic_path(path) as tmp, FeatureWriter(tmp, settings=settings,
                                                 attrs={"synthetic_seed": config.seed}) as writer:
        for si, ss in track(list(zip(items, feat_rngs)), desc="features", unit="inst", enabled=config.progress):
            feats = instance_features(cfg, world, si, np.random.default_rng(ss))
            frames = np.arange(0, len(next(iter(feats.values()))), stride)
            writer.write(si.instance.key, {m: a[frames] for m, a in feats.items()}, fps=si.instance.fps / stride,
                         num_frames=si.instance.total_frames, frame_index=frames,
                         timestamps=frames_to_seconds(frames, si.instance.fps), frame_rate=si.instance.fps)


def _write_videos(config: SynthConfig, cfg, world, items, out_dir: Path) -> dict:
    """``videos/<key>.mp4`` per instance and/or ``sources/<youtube_id>.mp4`` per source video;
    returns the folders written."""
    from concurrent.futures import ThreadPoolExecutor

    from ..machinery.ffmpeg import encode_video
    from ..machinery.progress import track

    vid_rngs = np.random.SeedSequence(config.seed + 2).spawn(len(items))
    paths, jobs = {}, []
    if config.videos:
        paths["videos"] = out_dir / "videos"
        jobs += [(paths["videos"] / f"{si.instance.key}.mp4", si.fps,
                  lambda si=si, ss=ss: instance_frames(cfg, world, si, np.random.default_rng(ss)))
                 for si, ss in zip(items, vid_rngs)]
    if config.sources:
        paths["sources"] = out_dir / "sources"
        groups = {}
        for si, ss in zip(items, vid_rngs):
            groups.setdefault(si.instance.youtube_id, []).append((si, ss))
        for yid, members in groups.items():
            members.sort(key=lambda m: m[0].instance.start)
            group, seeds = [m[0] for m in members], [m[1] for m in members]
            jobs.append((paths["sources"] / f"{yid}.mp4", group[0].fps,
                         lambda g=group, s=seeds: _source_frames(cfg, world, g, s)))

    def render(job):
        target, fps, frames = job
        encode_video(frames(), target, fps)

    # ffmpeg encodes in its own process while the next video renders
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        for _ in track(pool.map(render, jobs), total=len(jobs), desc="videos", unit="video",
                       enabled=config.progress):
            pass
    return paths
