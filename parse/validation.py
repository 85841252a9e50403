"""Scoring a parser on a split: its predictions for every instance and the per-epoch validation
score (TAPOS protocol). Used by training and by the tuning of "auto" options."""
from __future__ import annotations

import numpy as np

from tapos.evaluate import evaluate_tapos


def predict_dataset(parser, dataset, progress: bool = False) -> dict:
    """``{key: boundaries in annotation frames}`` for every instance of ``dataset``."""
    from tqdm import tqdm

    out = {}
    for i in tqdm(range(len(dataset)), desc="predict", unit="inst", disable=not progress, leave=False):
        item = dataset[i]
        out[item["key"]] = parser.predict(item["features"].numpy(), item["frames"].numpy())
    return out


def validation_scores(parser, dataset) -> dict:
    """Average F1, precision and recall over the relative and the absolute thresholds."""
    preds = predict_dataset(parser, dataset)
    res = evaluate_tapos({inst.key: inst for inst in dataset.instances}, preds)
    out = {}
    for name, sc in (("rel", res.relative), ("abs", res.absolute)):
        prec, rec, f1 = sc.prf
        out.update({f"val_f1_{name}": float(f1.mean()), f"val_prec_{name}": float(prec.mean()),
                    f"val_rec_{name}": float(rec.mean())})
    out["val_boundaries_per_instance"] = float(np.mean([len(v) for v in preds.values()])) if preds else 0.0
    return out
