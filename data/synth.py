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
from __future__ import annotations

import json
import math
import os
import string
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .annotations import INSTANCE_ID_RE, SUBSETS, UNKNOWN_ACTION, Instance, load_annotations, save_annotations
from .errors import TaposError
from .gebd import GebdVideo, save_gebd
from .io import atomic_path, atomic_write_text
from .options import OptionError, apply_options

DEFAULTS = {
    "instances": 240,            # instances in total (train + val)
    "classes": 8,                # action classes
    "val_fraction": 0.2,         # share of source videos whose instances go to `val`
    "instances_per_video": 3,    # instances cut from one source video (same split, as in TAPOS)
    "pool": 16,                  # sub-action prototypes shared across classes
    "min_subactions": 2,         # fewest sub-actions in an instance
    "max_subactions": 9,         # most sub-actions in an instance
    "count_jitter": 0.3,         # probability that an instance has one sub-action more or fewer than its class
    "fps_choices": [15, 24, 25, 30],  # native frame rates of the simulated source videos
    "duration_range": [3.0, 8.0],     # seconds; class means are drawn inside, instances vary around them
    "min_segment_frames": 4,     # shortest sub-action, frames
    "latent": 16,                # latent dimension of prototypes
    "dim": 64,                   # feature dimension per modality
    "dtype": "float32",          # feature dtype in the cache (float16 halves the size)
    "transition": 0.5,           # width of the blend at a boundary, fraction of the shorter neighbour
    "drift_in_segment": 0.5,     # how far a sub-action's signature moves from its start to its end
    "background": 0.2,           # weight of the per-class background vector
    "instance_offset": 0.25,     # std of a per-instance constant offset
    "smooth_noise": 0.4,         # std of AR(1) temporally smooth noise
    "white_noise": 0.15,         # std of per-frame white noise
    "view_changes": 0.25,        # camera moves (pan, zoom; TAPOS instances have no cuts) per second
    "view_shift": 2.0,           # how much a camera move changes every later frame (latent units)
    "view_ramp": 0.3,            # seconds a camera move takes
    "annotators": 3,             # annotators simulated in gebd_annotators.json (annotator 0 = the json)
    "annotator_jitter": 0.02,    # std of other annotators' boundary shifts, fraction of duration
    "video_size": [96, 64],      # width, height of rendered videos (even numbers)
    "first_shot_max": 300.0,     # seconds: a source video's first shot starts uniformly before this
    "signature_subactions": 0,   # brief sub-actions unique to each class, added to its template (0: none)
    "signature_share": 0.1,      # share of the duration each of them takes
}

# Named settings on top of DEFAULTS (`tapos-data synth DIR --preset NAME`; --instances, --classes
# and --set still override them).
PRESETS = {
    "default": {},
    # What the paper's TSN finding (Tables 1 and 4) rests on, as benchmarks/tsn_table.py and
    # `make demo` use it: sub-actions of different classes look alike (2-3 drawn from the same 3
    # prototypes, no class-wide background) except a brief one of each class's own (15% of the
    # duration), so where a snippet lands decides what it can tell. On top, what makes real TAPOS
    # footage over-parsed by local change detectors (paper section 6.3): a camera move about every
    # 2 s (none is a sub-action boundary), gradual transitions, sub-actions that change within.
    "signature": {"instances": 800, "classes": 8, "background": 0.0, "min_subactions": 2, "max_subactions": 3,
                  "pool": 3, "count_jitter": 0.0, "signature_subactions": 1, "signature_share": 0.15,
                  "view_changes": 0.5, "transition": 1.0, "drift_in_segment": 1.0, "val_fraction": 0.3},
}

_ID_CHARS = string.ascii_letters + string.digits + "-_"


@dataclass
class SynthInstance:
    instance: Instance
    protos: list        # prototype of each segment
    fps: float          # native frame rate of the source video (the annotation rate is within 1%)


class _World:
    """Everything shared by all instances: prototypes, class templates, projections."""

    def __init__(self, cfg: dict, rng: np.random.Generator):
        L, P, C = cfg["latent"], cfg["pool"], cfg["classes"]
        self.protos = rng.normal(size=(P, L))
        self.protos /= np.linalg.norm(self.protos, axis=1, keepdims=True) / 2.0
        self.drift_dir = rng.normal(size=(P, L)) / np.sqrt(L)
        self.background = rng.normal(size=(C, L)) / np.sqrt(L) * 2.0
        self.proj = {m: rng.normal(size=(L, cfg["dim"])) / np.sqrt(L) for m in ("rgb", "flow")}
        self.colours = rng.uniform(40, 255, size=(P, 3))
        self.bg_colours = rng.uniform(0, 120, size=(C, 3))
        self.motion = rng.uniform(-1, 1, size=(P, 4))  # start x, start y, dx, dy (relative)
        lo, hi = cfg["min_subactions"], cfg["max_subactions"]
        # Class-typical counts spread over the whole range, then shuffled over classes.
        counts = np.round(np.linspace(lo + 1, hi - 1, C)).astype(int) if C > 1 else np.array([lo + 1])
        rng.shuffle(counts)
        self.templates, self.proportions, self.mean_duration = [], [], []
        for c in range(C):
            seq = []
            for _ in range(int(counts[c])):
                choices = [p for p in range(P) if not seq or p != seq[-1]]
                seq.append(int(rng.choice(choices)))
            self.templates.append(seq)
            self.proportions.append(rng.dirichlet(np.full(len(seq), 1.5)))
            d0, d1 = cfg["duration_range"]
            self.mean_duration.append(float(rng.uniform(d0 + 0.2 * (d1 - d0), d1 - 0.2 * (d1 - d0))))
        if cfg["signature_subactions"]:
            self._add_signatures(cfg, rng)

    def _add_signatures(self, cfg, rng):
        """Each class gets brief sub-actions of its own (new prototypes beyond the shared pool),
        inserted at random places of its template with ``signature_share`` of the duration each:
        the rest of the action looks like other classes (drawn after everything else, so the
        default data do not change)."""
        L, P, C, n = cfg["latent"], cfg["pool"], cfg["classes"], int(cfg["signature_subactions"])
        extra = rng.normal(size=(C * n, L))
        extra /= np.linalg.norm(extra, axis=1, keepdims=True) / 2.0
        self.protos = np.concatenate([self.protos, extra])
        self.drift_dir = np.concatenate([self.drift_dir, rng.normal(size=(C * n, L)) / np.sqrt(L)])
        self.colours = np.concatenate([self.colours, rng.uniform(40, 255, size=(C * n, 3))])
        self.motion = np.concatenate([self.motion, rng.uniform(-1, 1, size=(C * n, 4))])
        share = float(cfg["signature_share"])
        for c in range(C):
            seq, props = self.templates[c], list(self.proportions[c] * (1 - n * share))
            for k in range(n):
                j = int(rng.integers(len(seq) + 1))
                seq.insert(j, P + c * n + k)
                props.insert(j, share)
            self.proportions[c] = np.asarray(props)


def _youtube_id(rng) -> str:
    return "".join(rng.choice(list(_ID_CHARS), size=11))


def _instance_layout(cfg, world, c, rng):
    """Prototype sequence and segment proportions of one instance of class ``c``."""
    seq = list(world.templates[c])
    props = list(world.proportions[c])
    lo, hi = cfg["min_subactions"], cfg["max_subactions"]
    if rng.random() < cfg["count_jitter"]:
        if (rng.random() < 0.5 and len(seq) > lo) or len(seq) >= hi:
            j = int(rng.integers(len(seq)))  # a sub-action left out: its time goes to a neighbour
            k = j - 1 if j > 0 else 1
            props[k] += props[j]
            del seq[j], props[j]
        else:
            j = int(rng.integers(len(seq)))  # an extra sub-action splits off part of segment j
            extra = [p for p in range(cfg["pool"]) if p != seq[j]]
            seq.insert(j + 1, int(rng.choice(extra)))
            props[j] /= 2
            props.insert(j + 1, props[j])
    props = np.asarray(props) * rng.lognormal(0.0, 0.35, size=len(props))
    return seq, props / props.sum()


def _segment_weights(n_frames: int, substages, transition: float) -> np.ndarray:
    """Soft membership ``(T, K)`` of each frame to each segment, blended around boundaries."""
    t = np.arange(n_frames, dtype=np.float64) + 0.5
    edges = np.asarray(substages, dtype=np.float64)
    lengths = np.diff(edges)
    K = len(lengths)
    steps = np.ones((n_frames, K + 1))
    steps[:, K] = 0.0
    for k in range(1, K):
        tau = max(transition * min(lengths[k - 1], lengths[k]) / 4.0, 0.3)
        with np.errstate(over="ignore"):  # exp overflows to inf far before the edge: the step is 0 there
            steps[:, k] = 1.0 / (1.0 + np.exp(-(t - edges[k]) / tau))
    w = steps[:, :K] - steps[:, 1:]
    return np.clip(w, 0.0, 1.0)


def _phase(n_frames: int, substages) -> np.ndarray:
    """Position of each frame within its (hard) segment, 0..1."""
    edges = np.asarray(substages, dtype=np.float64)
    t = np.arange(n_frames) + 0.5
    seg = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    return (t - edges[seg]) / (edges[seg + 1] - edges[seg])


def _view_offsets(cfg, si: SynthInstance) -> np.ndarray:
    """Offsets ``(T, latent)`` from camera moves (pans, zooms) at random times.

    Each move shifts what every later frame looks like, over ``view_ramp`` seconds, without
    changing the sub-action: a detector of local change fires on it. Features and videos of an
    instance share them (own generator, seeded by the dataset seed and the instance key)."""
    inst = si.instance
    T, L = inst.total_frames, cfg["latent"]
    rng = np.random.default_rng([int(cfg["seed"]), zlib.crc32(inst.key.encode())])
    n = rng.poisson(cfg["view_changes"] * inst.duration)
    ramp = max(1, int(round(cfg["view_ramp"] * inst.fps)))
    t = np.arange(T)
    out = np.zeros((T, L))
    for start in np.sort(rng.integers(1, max(T, 2), size=n)):
        step = rng.normal(size=L) * cfg["view_shift"] / np.sqrt(L)
        out += np.clip((t - start + 1) / ramp, 0.0, 1.0)[:, None] * step[None, :]
    return out


def _latent(cfg, world, si: SynthInstance, rng) -> np.ndarray:
    inst = si.instance
    T = inst.total_frames
    w = _segment_weights(T, inst.substages, cfg["transition"])
    phase = _phase(T, inst.substages)
    bump = 0.6 + 0.4 * np.sin(np.pi * phase)  # a sub-action is most typical in its middle
    sig = np.zeros((T, cfg["latent"]))
    for j, p in enumerate(si.protos):
        traj = world.protos[p][None, :] + cfg["drift_in_segment"] * (phase[:, None] - 0.5) * world.drift_dir[p][None, :]
        sig += w[:, j:j + 1] * traj
    sig *= bump[:, None]
    z = sig + cfg["instance_offset"] * rng.normal(size=(1, cfg["latent"]))
    eps = rng.normal(size=z.shape) * cfg["smooth_noise"] * np.sqrt(1 - 0.9 ** 2)
    from scipy.signal import lfilter  # here, not at the top: scipy.signal takes ~0.8 s to import, and
    # `tapos-data` imports this module at start-up for the preset names
    ar = lfilter([1.0], [1.0, -0.9], eps, axis=0)  # AR(1): ar[t] = 0.9 ar[t-1] + eps[t]
    return z + ar + _view_offsets(cfg, si)


def _features(cfg, world, si: SynthInstance, rng) -> dict:
    z = _latent(cfg, world, si, rng)
    bg = world.background[si.instance.action][None, :]
    out = {}
    for mod, bg_weight in (("rgb", cfg["background"]), ("flow", 0.3 * cfg["background"])):
        zm = z + bg_weight * bg + cfg["white_noise"] * rng.normal(size=z.shape)
        x = zm @ world.proj[mod]
        out[mod] = np.logaddexp(0.0, 2.0 * x).astype(cfg["dtype"])  # softplus: non-negative like pooled CNN features
    return out


def _frames(cfg, world, si: SynthInstance, rng):
    """Rendered RGB frames: a class-coloured background and one blob per sub-action prototype."""
    W, H = cfg["video_size"]
    inst = si.instance
    T = inst.total_frames
    w = _segment_weights(T, inst.substages, cfg["transition"])
    phase = _phase(T, inst.substages)
    ys = np.arange(H, dtype=np.float32)
    xs = np.arange(W, dtype=np.float32)
    ramp = (ys / H)[:, None, None]
    bg = (world.bg_colours[inst.action][None, None, :] * (0.7 + 0.3 * ramp)).astype(np.float32)
    bg = np.broadcast_to(bg, (H, W, 3))
    # A small bank of sensor-noise frames drawn once: drawing fresh Gaussian noise per frame costs
    # more than rendering it.
    noise = rng.standard_normal((8, H, W, 3), dtype=np.float32) * 4.0
    pick = rng.integers(0, 8, size=T)
    view = _view_offsets(cfg, si)[:, :3] * 60.0  # a camera change shifts the scene's colours
    for t in range(T):
        img = bg + view[t].astype(np.float32)
        for j in np.flatnonzero(w[t] > 0.02):
            p = si.protos[j]
            sx, sy, dx, dy = world.motion[p]
            cx = W * (0.5 + 0.3 * sx + 0.25 * dx * (phase[t] - 0.5))
            cy = H * (0.5 + 0.3 * sy + 0.25 * dy * (phase[t] - 0.5))
            r2 = 2 * (H * (0.12 + 0.05 * (p % 3))) ** 2
            # separable Gaussian blob: two 1-D exponentials instead of one per pixel
            mask = (np.exp(-((ys - cy) ** 2) / r2)[:, None] * np.exp(-((xs - cx) ** 2) / r2)[None, :])
            mask = (mask * w[t, j])[..., None]
            img = img * (1 - mask) + world.colours[p].astype(np.float32)[None, None, :] * mask
        img += noise[pick[t]]
        yield np.clip(img, 0, 255).astype(np.uint8)


def generate(n_instances: Optional[int] = None, n_classes: Optional[int] = None, seed: int = 0,
             preset: str = "default", like: Optional[Sequence] = None,
             max_instances: Union[None, int, Sequence] = None, **overrides):
    """Build the synthetic instances in memory. Returns ``(config, world, [SynthInstance])``.
    Settings: :data:`DEFAULTS`, then the :data:`PRESETS` entry ``preset``, then the counts and
    ``overrides``.

    ``like``: annotation files (TAPOS or GEBD layout) whose real structure the instances take
    instead of drawing their own (see :func:`_like_instances`); ``max_instances``: at most this
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
        return _generate_like(cfg, like, max_instances)
    rng = np.random.default_rng(seed)
    world = _World(cfg, rng)
    n, C = cfg["instances"], cfg["classes"]
    per_video = max(1, cfg["instances_per_video"])
    n_videos = -(-n // per_video)
    val_videos = set(rng.choice(n_videos, size=int(round(cfg["val_fraction"] * n_videos)), replace=False).tolist())
    out, used_ids = [], set()
    for v in range(n_videos):
        yid = _youtube_id(rng)
        while yid in used_ids:
            yid = _youtube_id(rng)
        used_ids.add(yid)
        subset = "val" if v in val_videos else "train"
        fps = float(rng.choice(cfg["fps_choices"]))
        shot_start = round(float(rng.uniform(0, cfg["first_shot_max"])), 2)
        for i in range(min(per_video, n - len(out))):
            c = int(rng.integers(C))
            seq, props = _instance_layout(cfg, world, c, rng)
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


def _class_weights(C: int) -> np.ndarray:
    """TAPOS-like skewed class sizes: class ``c`` has weight ``8 ** (-c / (C - 1))`` (the largest
    class 8 times the smallest, as high jump (>1,600 instances) to beam (200), paper section 3.2)."""
    w = 8.0 ** (-np.arange(C) / max(C - 1, 1))
    return w / w.sum()


def _like_protos(cfg, world, c: int, K: int, rng) -> list:
    """Prototypes of ``K`` segments following the template of class ``c``: spread evenly over the
    template when it is at least as long, else repeated cyclically; a prototype equal to the
    previous segment's is replaced by another of the shared pool (not the next one's either)."""
    t = world.templates[c]
    n = len(t)
    seq = [t[(k * n) // K] for k in range(K)] if K <= n else [t[k % n] for k in range(K)]
    for k in range(1, K):
        if seq[k] == seq[k - 1]:
            avoid = {seq[k - 1], seq[k + 1]} if k + 1 < K else {seq[k - 1]}
            choices = [p for p in range(cfg["pool"]) if p not in avoid]
            choices = choices or [p for p in range(cfg["pool"]) if p != seq[k - 1]]
            if not choices:
                raise OptionError(f"synthetic dataset: pool={cfg['pool']} is too small for --like "
                                  f"(consecutive sub-actions need different prototypes; use pool >= 2)")
            seq[k] = int(rng.choice(choices))
    return [int(p) for p in seq]


def _like_files(like, max_instances) -> list:
    """``[(path, max_instances or None)]`` from the ``like``/``max_instances`` arguments."""
    like = [like] if isinstance(like, (str, os.PathLike)) else list(like)
    if max_instances is None or isinstance(max_instances, (int, np.integer)):
        caps = [max_instances] * len(like)
    else:
        caps = list(max_instances)
        if len(caps) == 1:
            caps = caps * len(like)
        elif len(caps) != len(like):
            raise TaposError(f"synthetic dataset: --max-instances given {len(caps)} times for {len(like)} --like "
                             f"files (give it once for every file, or once per --like, in the same order)")
    for cap in caps:
        if cap is not None and (not isinstance(cap, (int, np.integer)) or cap < 1):
            raise TaposError(f"synthetic dataset: --max-instances {cap!r} is not a positive integer")
    return [(Path(p), None if c is None else int(c)) for p, c in zip(like, caps)]


def _like_instance(inst, counters: dict) -> Instance:
    """The output record of a source instance: its TAPOS ids when its key has them, else a made
    instance id ``s<n>_0_000_<sec>_<msec>`` from its duration (``n`` counts per YouTube id)."""
    if INSTANCE_ID_RE.match(inst.instance_id or ""):
        return Instance(inst.youtube_id, inst.instance_id, inst.action, inst.subset, inst.total_frames,
                        tuple(inst.substages), tuple(inst.shot_timestamps))
    ms = max(1, int(round(inst.duration * 1000)))
    n = counters[inst.youtube_id] = counters.get(inst.youtube_id, 0) + 1
    iid = f"s{n:05d}_0_000_{ms // 1000}_{ms % 1000:03d}"
    shot = tuple(inst.shot_timestamps) if len(inst.shot_timestamps) == 2 else (0.0, ms / 1000.0)
    return Instance(inst.youtube_id, iid, inst.action, inst.subset, inst.total_frames,
                    tuple(inst.substages), shot)


def _generate_like(cfg, like, max_instances):
    """The instances of real annotation files with synthetic content (``generate(like=...)``).

    Per instance of each file (file order; with a cap, that many drawn without replacement and
    kept in file order): its ``total_frames``, frame rate, boundaries, subset, YouTube and
    instance id (made from the duration when the key is no TAPOS key) and shot timestamps.
    A GEBD video in every split (``"all"``: the file name names none) goes to ``val`` or
    ``train`` per YouTube id, ``val_fraction`` of the ids to ``val``. Its class is the file's,
    else drawn with TAPOS-like skewed sizes (:func:`_class_weights`) over ``classes``; the world
    has templates for every real class id too. The prototype sequence follows the class template
    (:func:`_like_protos`). Random draws, in order: the world, the caps, the splits, the classes,
    the prototype sequences."""
    files = _like_files(like, max_instances)
    sources = []
    for path, cap in files:
        ann = load_annotations(path)
        if len(ann) == 0:
            raise TaposError(f"{path}: no instances")
        sources.append((path, cap, list(ann.values())))
    drawn_classes = int(cfg["classes"])
    real = [i.action for _, _, insts in sources for i in insts if i.action != UNKNOWN_ACTION]
    if real:
        cfg["classes"] = max(drawn_classes, max(real) + 1)  # a template for every real class id
    rng = np.random.default_rng(cfg["seed"])
    world = _World(cfg, rng)
    picked, report = [], []
    for path, cap, insts in sources:
        idx = np.arange(len(insts))
        if cap is not None and cap < len(insts):
            idx = np.sort(rng.choice(len(insts), size=cap, replace=False))
        picked += [(path, insts[j]) for j in idx]
        report.append({"path": str(path), "max_instances": cap, "instances": int(len(idx))})
    anywhere = list(dict.fromkeys(i.youtube_id for _, i in picked if i.subset not in SUBSETS))
    n_val = int(round(cfg["val_fraction"] * len(anywhere)))
    val_ids = {anywhere[j] for j in rng.choice(len(anywhere), size=n_val, replace=False)} if anywhere else set()
    unknown = [k for k, (_, i) in enumerate(picked) if i.action == UNKNOWN_ACTION]
    drawn = rng.choice(drawn_classes, size=len(unknown), p=_class_weights(drawn_classes))
    actions = [i.action for _, i in picked]
    for k, c in zip(unknown, drawn):
        actions[k] = int(c)
    out, counters, seen = [], {}, {}
    for (path, src), action in zip(picked, actions):
        subset = src.subset if src.subset in SUBSETS else ("val" if src.youtube_id in val_ids else "train")
        inst = _like_instance(src, counters)
        inst = Instance(inst.youtube_id, inst.instance_id, int(action), subset, inst.total_frames,
                        inst.substages, inst.shot_timestamps)
        if inst.key in seen:
            raise TaposError(f"{path}: instance {inst.key} is also in {seen[inst.key]} "
                             f"(every --like instance must have its own key)")
        seen[inst.key] = path
        protos = _like_protos(cfg, world, inst.action, inst.num_subactions, rng)
        out.append(SynthInstance(inst, protos, inst.fps))
    cfg["instances"] = len(out)
    cfg["like"] = report
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
        for img in _frames(cfg, world, si, np.random.default_rng(ss)):
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
    from tqdm import tqdm

    from .features import ExtractionSettings, FeatureWriter

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
            for si, ss in tqdm(list(zip(items, feat_rngs)), desc="features", unit="inst", disable=not progress):
                feats = _features(cfg, world, si, np.random.default_rng(ss))
                frames = np.arange(0, len(next(iter(feats.values()))), stride)
                writer.write(si.instance.key, {m: a[frames] for m, a in feats.items()}, fps=si.instance.fps / stride,
                             num_frames=si.instance.total_frames, frame_index=frames,
                             timestamps=frames / si.instance.fps, frame_rate=si.instance.fps)
    if videos or sources:
        from concurrent.futures import ThreadPoolExecutor

        from .ffmpeg import encode_video

        vid_rngs = np.random.SeedSequence(seed + 2).spawn(len(items))
        jobs = []
        if videos:
            paths["videos"] = out_dir / "videos"
            jobs += [(paths["videos"] / f"{si.instance.key}.mp4", si.fps,
                      lambda si=si, ss=ss: _frames(cfg, world, si, np.random.default_rng(ss)))
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
            for _ in tqdm(pool.map(render, jobs), total=len(jobs), desc="videos", unit="video",
                          disable=not progress):
                pass
    return paths
