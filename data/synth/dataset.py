"""Drawing a whole synthetic dataset (:func:`generate`) and writing it to a folder: annotations,
GEBD annotators, the planted truth, features and videos (:func:`write_dataset`)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..annotations import Instance, save_annotations
from ..errors import TaposError
from ..gebd import GebdVideo, save_gebd
from ..io import atomic_path, atomic_write_text
from ..options import OptionError, apply_options

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
            duration = max(duration, (min_frames + 1) / fps)
            start_ms = int(rng.integers(0, 2000))
            end_ms = start_ms + int(round(duration * 1000))
            iid = f"s{i + 1:05d}_{start_ms // 1000}_{start_ms % 1000:03d}_{end_ms // 1000}_{end_ms % 1000:03d}"
            total = int(round((end_ms - start_ms) / 1000.0 * fps))
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
        first = int(round(si.instance.start * fps))
        while frame < first:
            yield filler
            frame += 1
        for img in instance_frames(cfg, world, si, np.random.default_rng(ss)):
            yield img
            frame += 1
    # the last shot runs to its end (a downloaded video holds every shot whole, and check-videos
    # checks that it does), then a second of tail, as cut shots rarely end a video
    shot_end = int(math.ceil(group[-1].instance.shot_timestamps[1] * fps))
    for _ in range(max(0, shot_end - frame) + int(fps)):
        yield filler


def write_dataset(out_dir, n_instances=None, n_classes=None, seed: int = 0, features: bool = False,
                  videos: bool = False, sources: bool = False, progress: bool = True, preset: str = "default",
                  like: Optional[Sequence] = None, max_instances: Union[None, int, Sequence] = None,
                  stride: int = 1, **overrides) -> dict:
    """Write the synthetic dataset to ``out_dir``; returns the paths written.

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
    from ..features import ExtractionSettings, FeatureWriter
    from ..machinery.progress import track

    if int(stride) != stride or stride < 1:
        raise TaposError(f"synthetic dataset: stride must be a positive integer, got {stride}")
    if like and sources:
        raise TaposError("synthetic dataset: --sources cannot be used with --like: the real shot layout (where "
                         "each instance lies in its source video) is not known for GEBD files")
    cfg, world, items = generate(n_instances, n_classes, seed, preset, like=like, max_instances=max_instances,
                                 **overrides)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"annotations": out_dir / "tapos_annotation.json"}
    save_annotations([si.instance for si in items], paths["annotations"])
    seeds = np.random.SeedSequence(seed).spawn(3)
    ann_rng = np.random.default_rng(seeds[0])
    gebd = []
    for si in items:
        inst = si.instance
        gebd.append(GebdVideo(inst.key, inst.duration, _annotators(cfg, si, ann_rng), inst.total_frames, inst.fps,
                              None, 1.0, {"action": inst.action, "subset": inst.subset}))
    paths["gebd"] = out_dir / "gebd_annotators.json"
    save_gebd(gebd, paths["gebd"])
    truth = {
        "config": cfg,
        "templates": world.templates,
        "segments": {si.instance.key: si.protos for si in items},
    }
    paths["truth"] = out_dir / "synth_truth.json"
    atomic_write_text(paths["truth"], json.dumps(truth, indent=1))
    if features:
        paths["features"] = out_dir / "features.h5"
        feat_rngs = np.random.SeedSequence(seed + 1).spawn(len(items))
        with atomic_path(paths["features"]) as tmp, FeatureWriter(
                tmp, settings=ExtractionSettings(backbone="synthetic", weights={"rgb": "none", "flow": "none"},
                                                 modalities=("rgb", "flow"), dtype=cfg["dtype"], stride=stride),
                attrs={"synthetic_seed": seed}) as writer:
            for si, ss in track(list(zip(items, feat_rngs)), desc="features", unit="inst", enabled=progress):
                feats = instance_features(cfg, world, si, np.random.default_rng(ss))
                frames = np.arange(0, len(next(iter(feats.values()))), stride)
                writer.write(si.instance.key, {m: a[frames] for m, a in feats.items()}, fps=si.instance.fps / stride,
                             num_frames=si.instance.total_frames, frame_index=frames,
                             timestamps=frames / si.instance.fps, frame_rate=si.instance.fps)
    if videos or sources:
        from concurrent.futures import ThreadPoolExecutor

        from ..machinery.ffmpeg import encode_video

        vid_rngs = np.random.SeedSequence(seed + 2).spawn(len(items))
        jobs = []
        if videos:
            paths["videos"] = out_dir / "videos"
            jobs += [(paths["videos"] / f"{si.instance.key}.mp4", si.fps,
                      lambda si=si, ss=ss: instance_frames(cfg, world, si, np.random.default_rng(ss)))
                     for si, ss in zip(items, vid_rngs)]
        if sources:
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
            for _ in track(pool.map(render, jobs), total=len(jobs), desc="videos", unit="video", enabled=progress):
                pass
    return paths
