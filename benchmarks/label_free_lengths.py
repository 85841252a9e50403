"""Why the label-free parsers' lengths are seconds: each label-free method with its lengths in
seconds (the defaults), as fractions of the instance (the previous defaults) and in fixed rows (the
ones before), on the train split of a dataset with TAPOS's structure, read without a selection split.

For each it prints the predicted count per instance against the true count (their ratio of means,
and the ratio on instances with at most two boundaries and with five or more), the correlation of
the two per instance, and the GEBD F1@0.05 and average. The same numbers for the content-free
count model that ``prior (length)`` uses (a Poisson fit of the count on log duration) are the
reference for the correlation. Everything here is the fit split of train (what the defaults may be
chosen on); val is never read.

    python benchmarks/label_free_lengths.py --data /tmp/like_s3 [--embed-epochs 20] [--out benchmarks/results]

``--data``: a ``tapos-data synth --like`` folder (made by parsing_table.py's ``--like`` command, or
``tapos-data synth DIR --like tapos_gt_train.pkl --max-instances 1200 --like tapos_gt_val.pkl
--max-instances 300 --features --stride 3``). Writes ``label_free_lengths.md`` and ``.csv``.
"""
import json

import numpy as np
import pandas as pd

import harness
from tapos.data import FeatureDataset, load_annotations
from tapos.data.selection import DEV_FRACTION, selection
from tapos.parse import FitOptions, get_parser, predict_dataset, validation_scores
from tapos.parse.count import expected_count, fit_count_model

# (method, unit, options): the defaults (seconds), the previous defaults (fractions), older rows
CONFIGS = [
    ("pa", "seconds (default)", {}),
    ("pa", "fraction", {"window": 0.12, "min_distance": 0.1}),
    ("pa", "rows (GEBD's)", {"window": 5, "min_distance": 5}),
    ("tsm", "seconds (default)", {}),
    ("tsm", "fraction", {"kernel": 0.2, "min_length": 0.07}),
    ("tsm", "rows", {"kernel": 16, "min_length": 4}),
    ("kcpd", "seconds (default)", {}),
    ("kcpd", "fraction", {"span": None, "min_size": 4}),
    ("kmeans", "seconds (default)", {}),
    ("kmeans", "fraction", {"min_segment": 0.1}),
    ("embed", "seconds (default)", {}),
    ("embed", "fraction", {"span": None, "min_size": 4}),
]


def row(method, unit, true, counts, scores) -> dict:
    few, many = true <= 2, true >= 5
    return {"method": method, "lengths": unit, "count / true": counts.mean() / true.mean(),
            "on <= 2 true": counts[few].mean() / true[few].mean(),
            "on >= 5 true": counts[many].mean() / true[many].mean() if many.any() else float("nan"),
            "correlation with true count": float(np.corrcoef(true, counts)[0, 1]) if counts.std() > 0 else 0.0,
            "GEBD F1@0.05": scores["val_gebd_f1_05"], "GEBD avg": scores["val_gebd_avg"]}


def main():
    ap = harness.arguments(__file__, __doc__, data=harness.REQUIRED, data_help="a synth --like folder with features.h5")
    ap.add_argument("--embed-epochs", type=int, default=None, help="embed's epochs (default: its own)")
    ap.add_argument("--seed", type=int, default=0)
    args = harness.parse(ap)
    data = harness.existing(args.data, "tapos_annotation.json", "features.h5")
    ann = load_annotations(data / "tapos_annotation.json")
    fit = FeatureDataset(data / "features.h5", selection(ann, "dev", DEV_FRACTION).fit, "all", "rgb+flow")
    true = np.array([len(i.boundaries) for i in fit.instances], dtype=float)
    rows = []
    model = fit_count_model(fit)
    lengths = [fit.reader.info(i.key).num_rows for i in fit.instances]
    rows.append(row("count model (prior-length)", "—", true,
                    np.array([expected_count(model, n) for n in lengths], dtype=float),
                    {"val_gebd_f1_05": float("nan"), "val_gebd_avg": float("nan")}))
    trained = {}
    for method, unit, options in CONFIGS:
        if method == "embed":  # one model; the readout's options are read at predict time
            if "embed" not in trained:
                extra = {"epochs": args.embed_epochs} if args.embed_epochs else {}
                trained["embed"] = get_parser("embed", **extra)
                trained["embed"].fit(fit, None, FitOptions(seed=args.seed, progress=False))
            parser = trained["embed"]
            base = get_parser("embed").config
            parser.config.update({k: options.get(k, base[k]) for k in ("span", "min_size")})
        else:
            parser = get_parser(method, **options)
            parser.fit(fit, None, FitOptions(seed=args.seed, progress=False))
        preds = predict_dataset(parser, fit)
        counts = np.array([len(preds[i.key]) for i in fit.instances], dtype=float)
        rows.append(row(method, unit, true, counts, validation_scores(parser, fit, preds)))
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}), flush=True)
    table = pd.DataFrame(rows)
    harness.write_csv(args, "label_free_lengths.csv", table)
    text = [f"# Label-free lengths on TAPOS's structure ({len(fit)} instances of the fit split of `{data}`, "
            f"{true.mean():.2f} boundaries per instance, seed {args.seed})", "",
            "Read without a selection split, scored on the same fit split (nothing here is val). Count ratios "
            "are predicted over true boundaries per instance (means); the correlation is per instance. The "
            "count model is the one `prior (length)` places boundaries with.", "",
            table.to_markdown(index=False, floatfmt=".3f"), ""]
    harness.write_report(args, "label_free_lengths.md", "\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
