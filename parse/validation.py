"""Scoring a parser on a split: its predictions for every instance and the per-epoch validation
score (TAPOS protocol). Used by training and by the tuning of "auto" options."""
from __future__ import annotations

import numpy as np

from tapos.data.clock import frames_to_seconds
from tapos.data.gebd import tapos_to_gebd
from tapos.data.machinery.progress import track
from tapos.evaluate import evaluate_gebd, evaluate_tapos


def predict_dataset(parser, dataset, progress: bool = False) -> dict:
    """``{key: boundaries in annotation frames}`` for every instance of ``dataset``."""
    out = {}
    for i in track(range(len(dataset)), desc="predict", unit="inst", enabled=progress, leave=False):
        item = dataset[i]
        out[item["key"]] = parser.predict(item["features"].numpy(), item["frames"].numpy(), dataset.instances[i])
    return out


def validation_scores(parser, dataset, preds=None) -> dict:
    """Both protocols: the paper's average F1, precision and recall over the relative and the
    absolute thresholds (``val_f1_rel`` ...), and the GEBD challenge's F1 at 0.05 and average
    over 0.05..0.5 of the duration (``val_gebd_f1_05``, ``val_gebd_avg``). ``preds``: the
    parser's ``predict_dataset`` on ``dataset`` when already made."""
    preds = predict_dataset(parser, dataset) if preds is None else preds
    instances = {inst.key: inst for inst in dataset.instances}
    res = evaluate_tapos(instances, preds)
    out = {}
    for name, sc in (("rel", res.relative), ("abs", res.absolute)):
        prec, rec, f1 = sc.prf
        out.update({f"val_f1_{name}": float(f1.mean()), f"val_prec_{name}": float(prec.mean()),
                    f"val_rec_{name}": float(rec.mean())})
    gebd = {v.key: v for v in tapos_to_gebd(dataset.instances)}
    seconds = {k: frames_to_seconds(v, gebd[k].fps) for k, v in preds.items()}
    f1 = evaluate_gebd(gebd, seconds).relative.f1
    out.update({"val_gebd_f1_05": float(f1[0]), "val_gebd_avg": float(f1.mean())})
    out["val_boundaries_per_instance"] = float(np.mean([len(v) for v in preds.values()])) if preds else 0.0
    return out
