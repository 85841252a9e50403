"""Do learned patterns recover the synthetic dataset's planted shared sub-actions? (issue #6)

The default synthetic dataset plants sub-action prototypes shared by several classes (its
``synth_truth.json`` says which). For each method with patterns and several seeds: train on the
train split, run ``tapos-parse analyze`` on val with the truth, and print how many planted shared
sub-actions come out as one shared pattern (``recovered``), how many with a pattern that no other
sub-action of those classes gets (``specific``), and the NMI between planted sub-action and
pattern over all val segments.

    python benchmarks/pattern_recovery.py [--data /tmp/tapos_patterns] [--seeds 3] [--methods transparser kmeans isba]
"""
import argparse
import json
import time
from pathlib import Path

import pandas as pd

from tapos.data.synth import write_dataset
from tapos.parse.analyze import analyze
from tapos.parse import PARSERS
from tapos.parse.run import train


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/tapos_patterns")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", nargs="*", default=["transparser", "kmeans", "isba"])
    ap.add_argument("--epochs", type=int, default=None, help="default: each method's own")
    ap.add_argument("--set", dest="overrides", default="{}", help="method options as JSON, e.g. '{\"pattern_mi\": 0.1}'")
    ap.add_argument("--tag", default="", help="suffix of the result files and model directories")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "features.h5").exists():
        write_dataset(data, seed=0, features=True, progress=False)  # the default dataset (as `make demo`)
    feats, ann, truth = data / "features.h5", data / "tapos_annotation.json", data / "synth_truth.json"
    rows = []
    for method in args.methods:
        for seed in range(args.seeds):
            t = time.time()
            model = data / "models" / f"{method}_{seed}{args.tag}"
            overrides = json.loads(args.overrides) if method == "transparser" else {}
            epochs = args.epochs if PARSERS[method].has_epochs else None
            _, history = train(method, feats, ann, model, "rgb+flow", epochs, seed, overrides=overrides,
                               progress=False)
            a = analyze(model, feats, ann, truth=truth, progress=False)
            r = a.recovery
            best = next((h for h in reversed(history) if h.get("best")), history[-1])
            rows.append({"method": method + (f" {args.overrides}" if overrides else ""), "seed": seed, "val F1 (rel)": best.get("tuned_val_f1_rel", best.get("val_f1_rel")),
                         "patterns used": a.patterns_used, "shared patterns": len(a.shared),
                         "planted": r["planted"], "recovered": r["recovered"], "specific": r["specific"],
                         "NMI": r["nmi"], "seconds": round(time.time() - t)})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    summary = df.groupby("method", sort=False)[["val F1 (rel)", "patterns used", "shared patterns", "planted",
                                                "recovered", "specific", "NMI"]].mean()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"pattern_recovery{args.tag}.csv", index=False)
    text = (f"Per run:\n\n{df.to_markdown(index=False, floatfmt='.3f')}\n\n"
            f"Mean over {args.seeds} seeds:\n\n{summary.to_markdown(floatfmt='.3f')}\n")
    (out / f"pattern_recovery{args.tag}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
