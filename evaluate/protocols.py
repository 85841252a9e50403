"""Boundary precision / recall / F1: the GEBD challenge protocol and the TAPOS paper's protocol.

Both pool true positives, positives and detections over all videos (not a mean of per-video
scores) and use the greedy matching of ``matching.py``. See docs/evaluation.md.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from tapos.data.clock import frames_to_seconds
from tapos.data.gebd import MIN_CONSISTENCY

from .matching import greedy_true_positives_batch

# Literal values, not an accumulated range: the tolerance is thr * duration in float64 and the
# comparison is <=, so 0.15 must be the double nearest 0.15, not 0.05 + 0.05 + 0.05.
RELATIVE_THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
ABSOLUTE_THRESHOLDS = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)  # frames (TAPOS protocol)


def _prf(tp, pos, det):
    """Recall (1 if no positives), precision (0 if no detections), F1 (0 if P + R = 0)."""
    tp = np.asarray(tp, dtype=np.float64)
    pos = np.asarray(pos, dtype=np.float64)
    det = np.asarray(det, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = np.where(pos == 0, 1.0, tp / np.where(pos == 0, 1.0, pos))
        prec = np.where(det == 0, 0.0, tp / np.where(det == 0, 1.0, det))
        s = rec + prec
        f1 = np.where(s == 0, 0.0, 2 * rec * prec / np.where(s == 0, 1.0, s))
    return prec, rec, f1


@dataclass
class Scores:
    """Pooled precision, recall and F1 at each threshold, with the counts behind them."""

    thresholds: tuple
    tp: np.ndarray
    positives: np.ndarray
    detections: np.ndarray

    @property
    def prf(self):
        return _prf(self.tp, self.positives, self.detections)

    @property
    def precision(self) -> np.ndarray:
        return self.prf[0]

    @property
    def recall(self) -> np.ndarray:
        return self.prf[1]

    @property
    def f1(self) -> np.ndarray:
        return self.prf[2]

    def to_json(self) -> dict:
        prec, rec, f1 = self.prf
        return {
            "thresholds": [float(t) if isinstance(t, float) else int(t) for t in self.thresholds],
            "precision": [float(v) for v in prec],
            "recall": [float(v) for v in rec],
            "f1": [float(v) for v in f1],
            "avg_precision": float(np.mean(prec)),
            "avg_recall": float(np.mean(rec)),
            "avg_f1": float(np.mean(f1)),
        }


@dataclass
class EvaluationResult:
    """What ``tapos-evaluate`` reports; ``to_json`` gives the documented --json shape."""

    protocol: str
    relative: Scores
    absolute: Optional[Scores] = None
    counts: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"protocol": self.protocol, "relative": self.relative.to_json()}
        if self.absolute is not None:
            out["absolute"] = self.absolute.to_json()
        return out


@dataclass
class _Video:
    key: str
    annotators: list          # float64 arrays, stored order
    length: float             # predictions outside [0, length] are dropped
    tolerances: np.ndarray    # one per threshold


def _pool(videos: Iterable[_Video], predictions: Mapping, n_thr: int, counts: dict):
    """Steps 2-5 of the protocol, for every threshold at once."""
    pos_all = np.zeros(n_thr)
    det_all = 0
    gts, preds, tols, owner, det_of = [], [], [], [], []
    n_videos = 0
    for v in videos:
        counts["videos"] += 1
        pred = predictions.get(v.key)
        if pred is None:
            counts["missing_predictions"] += 1
            kept = np.zeros(0)
        else:
            pred = np.asarray(pred, dtype=np.float64)
            keep = (pred >= 0) & (pred <= v.length)
            counts["dropped_out_of_range"] += int((~keep).sum())
            kept = pred[keep]
        if kept.size == 0:
            pos_all += len(v.annotators[0])
            continue
        det_all += kept.size
        for gt in v.annotators:
            gts.append(np.asarray(gt, dtype=np.float64))
            preds.append(kept)
            tols.append(v.tolerances)
            owner.append(n_videos)
            det_of.append(kept.size)
        n_videos += 1
    tp_all = np.zeros(n_thr)
    if gts:
        tp = greedy_true_positives_batch(gts, preds, np.stack(tols)).astype(np.float64)  # (rows, K)
        pos = np.array([len(g) for g in gts], dtype=np.float64)[:, None]
        det = np.array(det_of, dtype=np.float64)[:, None]
        _, _, f1 = _prf(tp, np.broadcast_to(pos, tp.shape), np.broadcast_to(det, tp.shape))
        # best annotator of each video, first on ties: pad to (videos, annotators, K)
        owner = np.asarray(owner)
        first = np.searchsorted(owner, np.arange(n_videos))
        slot = np.arange(len(owner)) - first[owner]
        grid = np.full((n_videos, int(slot.max()) + 1, n_thr), -1.0)
        grid[owner, slot] = f1
        best = grid.argmax(axis=1)  # (videos, K)
        rows = first[:, None] + best
        cols = np.arange(n_thr)[None, :]
        tp_all = tp[rows, cols].sum(axis=0)
        pos_all = pos_all + np.broadcast_to(pos, tp.shape)[rows, cols].sum(axis=0)
    return tp_all, pos_all, np.full(n_thr, det_all)


def _new_counts(predictions: Mapping, known_keys) -> dict:
    return {
        "videos": 0,
        "skipped_low_consistency": 0,
        "missing_predictions": 0,
        "dropped_out_of_range": 0,
        "unknown_prediction_keys": sum(1 for k in predictions if k not in known_keys),
    }


def evaluate_gebd(gt: Mapping, predictions: Mapping, thresholds=RELATIVE_THRESHOLDS,
                  min_consistency: float = MIN_CONSISTENCY) -> EvaluationResult:
    """The GEBD challenge protocol.

    ``gt``: ``{key: GebdVideo}`` (``tapos.data.load_gebd``); ``predictions``: ``{key: seconds}``.
    Relative thresholds of the video duration; several annotators, the best one per video.
    """
    counts = _new_counts(predictions, gt)
    thr = np.asarray(thresholds, dtype=np.float64)
    videos = []
    for key, v in gt.items():
        if v.f1_consis_avg < min_consistency:
            counts["skipped_low_consistency"] += 1
            continue
        videos.append(_Video(key, v.annotators, v.duration, thr * np.float64(v.duration)))
    tp, pos, det = _pool(videos, predictions, len(thr), counts)
    return EvaluationResult("gebd", Scores(tuple(thresholds), tp, pos, det), None, counts)


def evaluate_tapos(instances: Mapping, predictions: Mapping, relative=RELATIVE_THRESHOLDS,
                   absolute=ABSOLUTE_THRESHOLDS) -> EvaluationResult:
    """The TAPOS paper's protocol.

    ``instances``: ``{key: Instance}`` (one split of ``tapos.data.load_annotations``);
    ``predictions``: ``{key: frames}`` relative to the instance start, in annotation frames.
    Ground truth ``substages[1:-1]``; tolerance ``thr * total_frames`` (relative) or ``d`` frames
    (absolute); predictions outside ``[0, total_frames]`` are dropped.
    """
    counts = _new_counts(predictions, instances)
    rel = np.asarray(relative, dtype=np.float64)
    ab = np.asarray(absolute, dtype=np.float64)
    videos = [
        _Video(key, [np.asarray(inst.boundaries, dtype=np.float64)], float(inst.total_frames),
               np.concatenate([rel * np.float64(inst.total_frames), ab]))
        for key, inst in instances.items()
    ]
    tp, pos, det = _pool(videos, predictions, len(rel) + len(ab), counts)
    n = len(rel)
    return EvaluationResult(
        "tapos",
        Scores(tuple(relative), tp[:n], pos[:n], det[:n]),
        Scores(tuple(absolute), tp[n:], pos[n:], det[n:]),
        counts,
    )


def evaluate_tapos_by_class(instances: Mapping, predictions: Mapping, **kwargs) -> dict:
    """``evaluate_tapos`` for the instances of each action class: ``{action: result}``."""
    by_class: dict = {}
    for key, inst in instances.items():
        by_class.setdefault(inst.action, {})[key] = inst
    return {
        action: evaluate_tapos(insts, {k: predictions[k] for k in insts if k in predictions}, **kwargs)
        for action, insts in sorted(by_class.items())
    }


def human_rounds(gt: Mapping, relative=RELATIVE_THRESHOLDS, absolute=ABSOLUTE_THRESHOLDS) -> dict:
    """The paper's human rows: annotation round ``i + 1`` (annotator ``i >= 1``) scored against
    round 1 (annotator 0) with the TAPOS protocol, over the videos that have both.

    Relative thresholds are fractions of the duration; absolute ones are frames (``d * fps``
    seconds), computed only when every video used has a frame rate (else ``absolute`` is None).
    Returns ``{i: EvaluationResult}``.
    """
    n_max = max((len(v.annotators) for v in gt.values()), default=0)
    rel = np.asarray(relative, dtype=np.float64)
    out = {}
    for i in range(1, n_max):
        used = {k: v for k, v in gt.items() if len(v.annotators) > i}
        preds = {k: v.annotators[i] for k, v in used.items()}
        counts = _new_counts(preds, used)
        with_abs = all(v.fps for v in used.values())
        ab = np.asarray(absolute if with_abs else (), dtype=np.float64)
        videos = [_Video(k, [np.asarray(v.annotators[0], dtype=np.float64)], float(v.duration),
                         np.concatenate([rel * np.float64(v.duration),
                                         frames_to_seconds(ab, v.fps) if with_abs else ab]))  # frames -> seconds
                  for k, v in used.items()]
        tp, pos, det = _pool(videos, preds, len(rel) + len(ab), counts)
        n = len(rel)
        out[i] = EvaluationResult("tapos", Scores(tuple(relative), tp[:n], pos[:n], det[:n]),
                                  Scores(tuple(absolute), tp[n:], pos[n:], det[n:]) if with_abs else None, counts)
    return out


def human_agreement(gt: Mapping, thresholds=RELATIVE_THRESHOLDS,
                    min_consistency: float = MIN_CONSISTENCY) -> dict:
    """Each annotator scored against the others with the GEBD protocol (the paper's human rows).

    For annotator ``i``: over videos with at least two annotators including ``i``, its boundaries
    are the predictions and the remaining annotators the ground truth. Returns ``{i: result}``.
    """
    from tapos.data.gebd import GebdVideo

    n_max = max((len(v.annotators) for v in gt.values()), default=0)
    out = {}
    for i in range(n_max):
        sub_gt, preds = {}, {}
        for key, v in gt.items():
            if len(v.annotators) < 2 or i >= len(v.annotators):
                continue
            others = [a for j, a in enumerate(v.annotators) if j != i]
            sub_gt[key] = GebdVideo(key, v.duration, others, v.num_frames, v.fps, None, v.f1_consis_avg)
            preds[key] = v.annotators[i]
        if sub_gt:
            out[i] = evaluate_gebd(sub_gt, preds, thresholds, min_consistency)
    return out
