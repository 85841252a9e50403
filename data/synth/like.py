"""Synthetic instances laid over the real structure of annotation files (``tapos-data synth --like``):
frame counts, rates, boundaries, splits and ids are kept; only what lies over them is drawn."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..annotations import INSTANCE_ID_RE, SUBSETS, UNKNOWN_ACTION, Instance, load_annotations
from ..errors import TaposError
from ..options import OptionError
from .world import SynthInstance, World


def _class_weights(C: int) -> np.ndarray:
    """TAPOS-like skewed class sizes: class ``c`` has weight ``8 ** (-c / (C - 1))`` (the largest
    class 8 times the smallest, as high jump (>1,600 instances) to beam (200), paper section 3.2)."""
    w = 8.0 ** (-np.arange(C) / max(C - 1, 1))
    return w / w.sum()


def _like_protos(cfg, t: list, K: int, rng) -> list:
    """Prototypes of ``K`` segments following the class template ``t``: spread evenly over the
    template when it is at least as long, else repeated cyclically; a prototype equal to the
    previous segment's is replaced by another of the shared pool (not the next one's either)."""
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


def _signature_protos(cfg, world, inst: Instance, rng) -> list:
    """With signature sub-actions (``--preset signature``, the TSN benchmark's data): the class's own
    prototypes take the instance's shortest real segments, one each and at most ``K - 1`` of them
    (a shared sub-action always remains; an instance without a boundary has no signature), and
    the other segments follow the template's shared prototypes (:func:`_like_protos`). The real
    boundaries stay where they are, so a signature is a whole annotated sub-action: brief, as the
    decisive sub-action of an action (a take-off) is, and where aligned sampling (paper Table 1)
    puts a snippet and uniform sampling may not."""
    n, pool = int(cfg["signature_subactions"]), int(cfg["pool"])
    own = [pool + inst.action * n + k for k in range(n)]
    shared = [p for p in world.templates[inst.action] if p < pool]
    K = inst.num_subactions
    seq = _like_protos(cfg, shared, K, rng)
    shortest = np.argsort(np.diff(inst.substages), kind="stable")[:max(K - 1, 0)]
    for proto, k in zip(own, shortest):
        seq[int(k)] = proto
    return seq


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


def generate_like(cfg, like, max_instances):
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
    world = World(cfg, rng)
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
        protos = (_signature_protos(cfg, world, inst, rng) if cfg["signature_subactions"]
                  else _like_protos(cfg, world.templates[inst.action], inst.num_subactions, rng))
        out.append(SynthInstance(inst, protos, inst.fps))
    cfg["instances"] = len(out)
    cfg["like"] = report
    return cfg, world, out


