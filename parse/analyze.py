"""What a trained parser's patterns say about actions (paper sections 5.2 and 6.4, Figures 4 and 8).

For every analysed frame the parser's response to its m learned patterns (TransParser: the last
SPS unit's attention over the miner rows) gives an argmax pattern. From these:

- **usage**: a class x pattern matrix counting the frames of each class whose argmax is each
  pattern (it sums to the frames analysed);
- **shared patterns** (inter-action): patterns that at least ``min_share`` of the frames of two or
  more classes have as argmax, with those classes;
- **typical sequences** (intra-action): per class, the ordered patterns of an instance (runs of the
  smoothed labels the boundaries come from), the medoid sequence under edit distance and how
  consistent the class is (share of instances with exactly it; mean similarity
  ``1 - edit distance / longer length`` to it);
- **exemplars**: per pattern, the frames with the highest response, at most one per instance
  (the retrieval of Figure 8, kept diverse);
- **discriminative sub-actions**: every annotated sub-action classified on its own, by the
  method's classifier (TransParser: the mean over the segment's frames of ``W f''``) or, for a
  method without one, a logistic regression on instance-mean features fitted on ``train``;
  per class the position and the pattern whose segments are classified best;
- with the synthetic dataset's planted truth, how many planted shared sub-actions come out as
  one shared pattern (``planted_recovery``).

``analyze`` returns an :class:`Analysis` of pandas tables; ``report.write_report`` renders it.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from tapos.data.annotations import UNKNOWN_ACTION, load_annotations
from tapos.data.layouts import require_classes
from tapos.data.machinery.dataset import FeatureDataset
from tapos.data.machinery.progress import track
from tapos.data.errors import TaposError
from tapos.data.options import apply_options

from .checkpoint import load_model
from .registry import PARSERS
from tapos.data.clock import edge_frames, frames_to_seconds

from .segments import change_points, spans

DEFAULTS = {
    "split": "val",     # instances analysed: train, val, test or all
    "top": 5,           # exemplar frames per pattern (at most one per instance)
    "min_share": 0.05,  # a class uses a pattern when this share of its frames has it as argmax
}


@dataclass
class Analysis:
    method: str
    modality: str
    split: str
    patterns: int                     # m, rows of the miner (responses per frame)
    usage: pd.DataFrame               # classes x patterns, frame counts
    shared: pd.DataFrame              # pattern, classes, shares, frames
    sequences: pd.DataFrame           # per class: typical sequence and consistency
    exemplars: pd.DataFrame           # pattern, rank, key, row, frame, seconds, response
    segments: pd.DataFrame            # one row per annotated sub-action analysed
    discriminative: pd.DataFrame      # per class: best position, best pattern, whole instance
    classifier: str                   # what classified the segments
    recovery: Optional[dict] = None   # planted_recovery, when the synthetic truth is given

    @property
    def frames(self) -> int:
        return int(self.usage.to_numpy().sum())

    @property
    def instances(self) -> int:
        return int(self.sequences["instances"].sum())

    @property
    def patterns_used(self) -> int:
        """Patterns that are the argmax of at least one frame."""
        return int((self.usage.sum(axis=0) > 0).sum())


# --- building blocks (pure functions) --------------------------------------------------------
def usage_matrix(labels: list, actions: list, patterns: int, classes: list) -> pd.DataFrame:
    """Frame counts: ``[class, pattern]`` = frames of instances of that class whose label is the pattern."""
    out = np.zeros((len(classes), patterns), dtype=np.int64)
    row = {c: i for i, c in enumerate(classes)}
    for lab, a in zip(labels, actions):
        out[row[a]] += np.bincount(np.asarray(lab, dtype=np.int64), minlength=patterns)[:patterns]
    return pd.DataFrame(out, index=pd.Index(classes, name="class"), columns=pd.Index(range(patterns), name="pattern"))


def shared_patterns(usage: pd.DataFrame, min_share: float = 0.05) -> pd.DataFrame:
    """Patterns used (share of a class's frames >= ``min_share``) by at least two classes, the most
    widely shared first."""
    totals = usage.sum(axis=1).replace(0, 1)
    share = usage.div(totals, axis=0)
    rows = []
    for k in usage.columns:
        users = [c for c in usage.index if share.loc[c, k] >= min_share]
        if len(users) >= 2:
            rows.append({"pattern": int(k), "classes": users, "n_classes": len(users),
                         "shares": [round(float(share.loc[c, k]), 4) for c in users],
                         "frames": int(usage[k].sum())})
    df = pd.DataFrame(rows, columns=["pattern", "classes", "n_classes", "shares", "frames"])
    return df.sort_values(["n_classes", "frames"], ascending=False, kind="stable").reset_index(drop=True)


def runs(labels) -> list:
    """The ordered patterns of a label sequence: ``[3, 3, 7, 7, 3] -> [3, 7, 3]``."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    return [int(labels[0])] + [int(labels[t]) for t in change_points(labels)]


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def similarity(a, b) -> float:
    """``1 - edit distance / longer length`` (1: equal)."""
    n = max(len(a), len(b))
    return 1.0 - edit_distance(a, b) / n if n else 1.0


def typical_sequence(seqs: list) -> tuple:
    """``(medoid, share equal to it, mean similarity to it)``: the sequence with the smallest total
    edit distance to the others (the most frequent one among ties)."""
    if not seqs:
        return [], 0.0, 0.0
    uniq = list(dict.fromkeys(tuple(s) for s in seqs))
    count = Counter(tuple(s) for s in seqs)
    cost = {u: sum(edit_distance(u, tuple(s)) for s in seqs) for u in uniq}
    medoid = min(uniq, key=lambda u: (cost[u], -count[u]))
    return list(medoid), count[medoid] / len(seqs), float(np.mean([similarity(medoid, s) for s in seqs]))


def top_exemplars(best: dict, top: int) -> pd.DataFrame:
    """``best``: ``{key: (rows (m,), values (m,))}``, each instance's highest-response row per
    pattern. Returns per pattern the ``top`` instances with the highest response (rank 1 first)."""
    keys = list(best)
    if not keys:
        return pd.DataFrame(columns=["pattern", "rank", "key", "row", "response"])
    rows = np.stack([best[k][0] for k in keys])    # (N, m)
    vals = np.stack([best[k][1] for k in keys])    # (N, m)
    out = []
    for p in range(vals.shape[1]):
        order = np.argsort(-vals[:, p], kind="stable")[:top]
        out += [{"pattern": p, "rank": r + 1, "key": keys[i], "row": int(rows[i, p]), "response": float(vals[i, p])}
                for r, i in enumerate(order)]
    return pd.DataFrame(out)


def discriminative_summary(segments: pd.DataFrame, instance_acc: dict) -> pd.DataFrame:
    """Per class: the sub-action position and the pattern whose segments, classified alone, are
    right most often (ties: the higher mean probability of the class), beside the whole-instance
    accuracy."""
    rows = []
    for c, seg in segments.dropna(subset=["correct"]).groupby("class", sort=True):
        row = {"class": c, "instances": int(seg["key"].nunique()), "instance_accuracy": instance_acc.get(c, np.nan)}
        for by in ("position", "pattern"):
            g = seg.groupby(by).agg(segments=("correct", "size"), accuracy=("correct", "mean"), prob=("prob", "mean"))
            best = g.sort_values(["accuracy", "prob"], ascending=False, kind="stable").iloc[0]
            row.update({f"best_{by}": int(best.name), f"{by}_accuracy": float(best["accuracy"]),
                        f"{by}_segments": int(best["segments"])})
        rows.append(row)
    return pd.DataFrame(rows)


def planted_recovery(segments: pd.DataFrame, shared: pd.DataFrame, truth: dict) -> dict:
    """How well a parser's patterns recover the synthetic dataset's planted shared sub-actions
    (prototypes in the templates of two or more classes).

    A class's pattern for a prototype is the most frequent dominant pattern of the analysed
    segments of that prototype in that class. A planted prototype is *recovered* when two or more
    of its classes give the same pattern and ``shared`` lists that pattern for them; it is
    *specific* when, in addition, no other prototype of those classes gets that pattern (so the
    pattern means this sub-action, not merely "something common"). ``nmi``: normalized mutual
    information between the prototype and the dominant pattern of every analysed segment.
    ``segments`` needs ``key``, ``class``, ``position``, ``pattern``.
    """
    from sklearn.metrics import normalized_mutual_info_score

    classes_of = {}
    for c, template in enumerate(truth["templates"]):
        for p in set(template):
            classes_of.setdefault(int(p), set()).add(c)
    planted = {p: cs for p, cs in classes_of.items() if len(cs) >= 2}
    votes, protos_seen, patterns_seen = {}, [], []
    for key, c, pos, pattern in segments[["key", "class", "position", "pattern"]].itertuples(index=False, name=None):
        protos = truth["segments"].get(key)
        if protos is None or pos > len(protos):
            continue
        p = int(protos[pos - 1])
        votes.setdefault((p, int(c)), []).append(int(pattern))
        protos_seen.append(p)
        patterns_seen.append(int(pattern))
    class_pattern = {pc: Counter(v).most_common(1)[0][0] for pc, v in votes.items()}
    listed = {int(r.pattern): set(r.classes) for r in shared.itertuples(index=False)}
    details, recovered, specific = [], 0, 0
    for p, cs in sorted(planted.items()):
        found = {c: class_pattern[(p, c)] for c in sorted(cs) if (p, c) in class_pattern}
        counts = Counter(found.values())
        pattern, n = counts.most_common(1)[0] if counts else (None, 0)
        agreeing = sorted(c for c, k in found.items() if k == pattern)
        ok = n >= 2 and set(agreeing) <= listed.get(pattern, set())
        clash = sorted({q for (q, c), k in class_pattern.items() if q != p and c in agreeing and k == pattern})
        recovered += ok
        specific += ok and not clash
        details.append({"prototype": p, "classes": sorted(cs), "seen_in": sorted(found), "pattern": pattern,
                        "agreeing": agreeing, "recovered": bool(ok), "also_for_prototypes": clash})
    nmi = float(normalized_mutual_info_score(protos_seen, patterns_seen)) if protos_seen else float("nan")
    return {"planted": len(planted), "recovered": recovered, "specific": specific,
            "rate": recovered / len(planted) if planted else float("nan"),
            "specific_rate": specific / len(planted) if planted else float("nan"), "nmi": nmi, "details": details}


# --- the analysis ---------------------------------------------------------------------------
def _probe(parser, train_ds):
    """Logistic regression on standardized instance-mean features of ``train``: classifies spans
    for a method without a classifier of its own."""
    from sklearn.linear_model import LogisticRegression

    xs, ys = [], []
    for i in range(len(train_ds)):
        item = train_ds[i]
        if item["action"] != UNKNOWN_ACTION:
            xs.append(parser.transform(item["features"].numpy()).mean(0))
            ys.append(item["action"])
    if len(set(ys)) < 2:
        return None
    clf = LogisticRegression(max_iter=2000).fit(np.stack(xs), ys)
    return clf


def _offers(parser_cls, method: str) -> bool:
    """Whether a parser class overrides an optional analysis method of ``Parser``."""
    from .base import Parser

    return getattr(parser_cls, method) is not getattr(Parser, method)


def methods_with_patterns() -> list:
    return sorted(n for n, cls in PARSERS.items() if _offers(cls, "patterns"))


def analyze(model_dir, features, annotations, truth=None, progress: bool = True, **options) -> Analysis:
    """Analyse the patterns of the parser in ``model_dir`` on the instances of ``options["split"]``;
    see :data:`DEFAULTS`. ``truth``: the synthetic dataset's ``synth_truth.json`` (path or dict)."""
    opts = apply_options(DEFAULTS, options, "analysis")
    parser, modality = load_model(model_dir)
    if parser.name not in methods_with_patterns():
        raise TaposError(f"{model_dir}: method {parser.name} learns no sub-action patterns; analyze needs one of "
                         f"{', '.join(methods_with_patterns())}")
    ann = load_annotations(annotations)
    require_classes(ann.split(opts["split"]), "tapos-parse analyze")
    ds = FeatureDataset(features, ann, opts["split"], modality)
    classes = sorted({inst.action for inst in ds.instances})
    classifier, classify = _span_classifier(parser, features, ann, modality, classes)

    raw_labels, smooth, actions, best, seg_rows, inst_right, ann_frames = [], {}, [], {}, [], {}, {}
    m = None
    for i in track(range(len(ds)), desc="analyze", unit="inst", enabled=progress):
        item = ds[i]
        x = item["features"].numpy()
        resp = parser.patterns(x)
        if resp is None:  # a method whose patterns depend on its options (embed: objective=codes)
            raise TaposError(f"{model_dir}: this {parser.name} model learns no sub-action patterns "
                             f"(its options: {parser.config})")
        m = resp.shape[1]
        raw = resp.argmax(1)
        raw_labels.append(raw)
        actions.append(item["action"])
        smooth[item["key"]] = parser.pattern_labels(x, resp)
        best[item["key"]] = (resp.argmax(0), resp.max(0))
        ann_frames[item["key"]] = item["frames"].numpy()
        segs = spans(item["row_boundaries"].tolist(), len(x))  # the annotated sub-actions, in rows
        span_probs, whole = classify(x, segs)
        a = item["action"]
        if whole is not None and a != UNKNOWN_ACTION:  # an instance without a class
            inst_right.setdefault(a, []).append(int(np.argmax(whole)) == a)
        seg_rows += _segment_rows(item, raw, segs, span_probs)

    usage = usage_matrix(raw_labels, actions, m, classes)
    shared = shared_patterns(usage, opts["min_share"])
    sequences = pd.DataFrame([_class_sequences(c, [runs(smooth[inst.key]) for inst in ds.instances
                                                   if inst.action == c]) for c in classes])
    exemplars = _exemplar_times(top_exemplars(best, int(opts["top"])), ann_frames, ann, usage)
    segments = pd.DataFrame(seg_rows)
    disc = (discriminative_summary(segments, {c: float(np.mean(v)) for c, v in inst_right.items()})
            if "correct" in segments else pd.DataFrame())
    recovery = None
    if truth is not None:
        truth = truth if isinstance(truth, dict) else json.loads(Path(truth).read_text())
        recovery = planted_recovery(segments, shared, truth)
    return Analysis(parser.name, modality, opts["split"], m, usage, shared, sequences, exemplars, segments, disc,
                    classifier, recovery)


def _span_classifier(parser, features, ann, modality, classes) -> tuple:
    """What classifies an annotated sub-action alone: the parser's own class head, else a logistic
    regression on train's instance-mean features, else nothing. Returns its name and
    ``classify(x, segs) -> (class probabilities of each span, of the whole instance)`` (Nones
    without a classifier)."""
    from scipy.special import softmax

    if _offers(type(parser), "class_logits"):
        def by_model(x, segs):
            logits = parser.class_logits(x)
            return [softmax(logits[s:e].mean(0)) for s, e in segs], softmax(logits.mean(0))
        return f"{parser.name}'s classifier", by_model
    if not len(ann.split("train")):
        return "none", lambda x, segs: (None, None)
    probe = _probe(parser, FeatureDataset(features, ann, "train", modality))

    def by_probe(x, segs):
        z = parser.transform(x)
        probs = probe.predict_proba(np.stack([z[s:e].mean(0) for s, e in segs] + [z.mean(0)]))
        full = np.zeros((len(probs), max(classes + list(probe.classes_)) + 1))
        full[:, probe.classes_] = probs
        return list(full[:-1]), full[-1]
    return "logistic regression on instance-mean features (train)", by_probe


def _segment_rows(item: dict, raw: np.ndarray, segs: list, span_probs) -> list:
    """One row per annotated sub-action of ``item``: its class, place, edges in annotation frames,
    dominant pattern, and (with ``span_probs``) how well it alone tells the class."""
    a = item["action"]
    edges = edge_frames([s for s, _ in segs] + [len(raw)], item["frames"].numpy(), item["total_frames"])
    rows = []
    for j, (s, e) in enumerate(segs):
        row = {"key": item["key"], "class": a, "position": j + 1, "n_positions": len(segs),
               "start_frame": float(edges[j]), "end_frame": float(edges[j + 1]),
               "pattern": int(np.bincount(raw[s:e]).argmax())}
        if span_probs is not None:
            p = span_probs[j]
            known = 0 <= a < len(p)
            row.update({"prob": float(p[a]) if known else np.nan,
                        "correct": float(int(np.argmax(p)) == a) if a >= 0 else np.nan})
        rows.append(row)
    return rows


def _class_sequences(c, seqs: list) -> dict:
    """A class's typical sequence of patterns over its instances' sequences ``seqs``."""
    typical, exact, sim = typical_sequence(seqs)
    return {"class": c, "instances": len(seqs), "typical": typical, "exact_share": exact,
            "similarity": sim, "mean_length": float(np.mean([len(s) for s in seqs]))}


def _exemplar_times(exemplars: pd.DataFrame, ann_frames: dict, ann, usage: pd.DataFrame) -> pd.DataFrame:
    """The exemplars with their annotation frame and seconds, those of patterns no frame has as
    its argmax dropped."""
    if not len(exemplars):
        return exemplars
    frames = [float(ann_frames[k][r]) for k, r in zip(exemplars["key"], exemplars["row"])]
    exemplars["frame"] = frames  # annotation frame from the instance start
    exemplars["seconds"] = [float(frames_to_seconds(f, ann[k].fps)) for f, k in zip(frames, exemplars["key"])]
    used = usage.sum(axis=0)
    return exemplars[exemplars["pattern"].map(lambda p: used[p] > 0)].reset_index(drop=True)
