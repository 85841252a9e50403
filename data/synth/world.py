"""The synthetic world: the generator's settings, its shared sub-action prototypes and class
templates, and how one instance's latent, features and video frames are drawn from them."""
from __future__ import annotations

import string
import zlib
from dataclasses import dataclass

import numpy as np

from ..annotations import Instance
from ..clock import seconds_to_frames

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


class World:
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


def youtube_id(rng) -> str:
    return "".join(rng.choice(list(_ID_CHARS), size=11))


def instance_layout(cfg, world, c, rng):
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
    ramp = max(1, int(round(float(seconds_to_frames(cfg["view_ramp"], inst.fps)))))
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


def instance_features(cfg, world, si: SynthInstance, rng) -> dict:
    z = _latent(cfg, world, si, rng)
    bg = world.background[si.instance.action][None, :]
    out = {}
    for mod, bg_weight in (("rgb", cfg["background"]), ("flow", 0.3 * cfg["background"])):
        zm = z + bg_weight * bg + cfg["white_noise"] * rng.normal(size=z.shape)
        x = zm @ world.proj[mod]
        out[mod] = np.logaddexp(0.0, 2.0 * x).astype(cfg["dtype"])  # softplus: non-negative like pooled CNN features
    return out


def instance_frames(cfg, world, si: SynthInstance, rng):
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


