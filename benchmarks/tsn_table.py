"""The paper's Tables 1 and 4 on a synthetic benchmark: TSN with uniform, aligned and parsed snippets.

Generates (once) a synthetic dataset whose classes share most sub-actions and differ by a brief
sub-action of their own (the ``signature`` preset of ``tapos.data.synth.PRESETS``: the property the
paper's finding rests on, see docs/tsn.md; ``--preset default`` is ``make demo``'s parsing data, for
comparison), trains each parser on it and predicts the boundaries of every instance, then trains
the feature TSN with each sampling scheme over several seeds and prints

- Table 1: uniform vs aligned (annotated sub-actions);
- Table 4: uniform vs parsed with each parser's boundaries;

as mean +- std over seeds of top-1 and mean class accuracy ("Avg. Acc."), RGB and RGB+Flow, with
the number of seeds in which each scheme is ahead of uniform sampling. Each seed trains the
parsers (supervised ones selected on dev, label-free ones reading no boundary; never on val) and
the TSNs anew; the parsers' own val F1 is a column.

    python benchmarks/tsn_table.py [--preset signature] [--seeds 5] [--segments 3] [--resume]
    python benchmarks/tsn_table.py --preset default --parsers transparser --tag _default
    python benchmarks/tsn_table.py --tag _tapos_like --stride 3 \
        --like ../shared/tapos_gt/tapos_gt_train.pkl --max-instances 1200 \
        --like ../shared/tapos_gt/tapos_gt_val.pkl --max-instances 300

``--like`` lays the data over the real structure of annotation files (``tapos-data synth --like``):
real instance lengths, rates, boundaries and splits; the class's own sub-action then takes each
instance's shortest annotated segment (``tapos.data.synth.like``).

Writes ``tsn_runs{tag}.csv`` (one row per scheme and seed) and ``tsn_table{tag}.md`` (with the command).
"""
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

import harness
from seeds import ahead, mean_std
from tapos.data import FeatureDataset, load_annotations
from tapos.data.io import atomic_write_text
from tapos.data.selection import selection
from tapos.data.synth import PRESETS
from tapos.parse import FitOptions, get_parser, predict_dataset, validation_scores
from tapos.parse.run import default_select_on
from tapos.tsn import train
from tapos.tsn.data import SnippetDataset

PARSERS = ["transparser", "isba", "ctm", "tcn", "pa", "kcpd", "embed", "prior"]  # prior: content-free boundaries
PRIOR = "parsed (prior)"  # the content-free boundaries' row
METRICS = ["RGB Top-1", "RGB Avg. Acc.", "RGB+Flow Top-1", "RGB+Flow Avg. Acc.", "parser val F1 (rel)",
           "parser val GEBD F1@0.05", "boundaries / instance", "sub-actions seen", "signature seen (%)"]


def boundaries(method, data, ann, seed):
    """Boundaries of every instance from ``method`` fitted as ``tapos-parse train`` fits it by
    default (a supervised method: on train minus dev, epochs and "auto" options chosen on dev; a
    label-free one: on all of train, reading no boundary), and the parser's own scores on val."""
    sel = selection(ann, default_select_on(method))
    fit_set = FeatureDataset(data / "features.h5", sel.fit, "all", "rgb+flow")
    dev = FeatureDataset(data / "features.h5", sel.select, "all", "rgb+flow") if sel.select is not None else None
    va = FeatureDataset(data / "features.h5", ann, "val", "rgb+flow")
    parser = get_parser(method)
    parser.fit(fit_set, dev, FitOptions(seed=seed, progress=False))
    preds = {}
    for ds in (fit_set, dev, va):
        if ds is not None:
            preds.update({k: [float(b) for b in v] for k, v in predict_dataset(parser, ds).items()})
    return {"boundaries": preds, "val": validation_scores(parser, va)}


def cached_boundaries(method, data, ann, seed):
    path = data / f"boundaries_{method}_seed{seed}.json"
    if not path.exists():
        t = time.time()
        atomic_write_text(path, json.dumps(boundaries(method, data, ann, seed)))
        print(f"{method} seed {seed}: boundaries in {time.time() - t:.0f} s", flush=True)
    return json.loads(path.read_text())


def annotated_rows(data, ann, segments) -> dict:
    """Each val instance's annotated sub-actions as row edges ``[0, cut, ..., rows]`` and the index
    of its signature sub-action (the class's own brief one, the only one that tells the class apart:
    ``synth_truth.json``, a prototype beyond the shared pool; None on data without one)."""
    truth = json.loads((data / "synth_truth.json").read_text())
    annotated = SnippetDataset(data / "features.h5", ann, "val", "rgb", "aligned", segments, train=False)
    out = {}
    for i, inst in enumerate(annotated.base.instances):
        rows, cuts = annotated.layout(i)
        own = [j for j, proto in enumerate(truth["segments"][inst.key]) if proto >= truth["config"]["pool"]]
        out[inst.key] = ([0, *cuts, rows], own[0] if own else None)
    return out


def snippet_stats(data, ann, sampling, bounds, segments, annotated):
    """Over the val instances: the mean number of boundaries the scheme's snippets follow, how many
    different annotated sub-actions its test snippets land in, and the share of instances where one
    lands in the signature sub-action (NaN on data without one)."""
    scheme = SnippetDataset(data / "features.h5", ann, "val", "rgb", sampling, segments, train=False,
                            boundaries=bounds)
    n_bounds, distinct, seen = [], [], []
    for i, inst in enumerate(scheme.base.instances):
        edges, own = annotated[inst.key]
        which = np.searchsorted(edges, scheme.snippet_rows(i), side="right") - 1  # sub-action of each snippet
        distinct.append(len(set(which.tolist())))
        seen.append(np.nan if own is None else float(own in which))
        n_bounds.append(0 if sampling == "uniform" else len(scheme.layout(i)[1]))
    return {"boundaries / instance": float(np.mean(n_bounds)), "sub-actions seen": float(np.mean(distinct)),
            "signature seen (%)": 100 * float(np.mean(seen))}


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """mean ± std over seeds per scheme, and in how many seeds each scheme is ahead of uniform."""
    out = mean_std(runs, "sampling", METRICS, digits=2)
    out.insert(len(METRICS), "ahead of uniform (seeds)",
               ["—" if c == "uniform" else ahead(runs, "sampling", c, "RGB+Flow Top-1")["uniform"] for c in out.index])
    if PRIOR in out.index:  # the content-free boundaries: a parser's snippets should beat them, not only uniform's
        out.insert(len(METRICS) + 1, "ahead of parsed (prior) (seeds)",
                   ["—" if c in ("uniform", PRIOR) else ahead(runs, "sampling", c, "RGB+Flow Top-1")[PRIOR]
                    for c in out.index])
    return out


def chance_line(ann) -> str:
    """What a classifier that never looks at the video scores on val: always the train split's most
    frequent class (top-1), and 1 / classes (mean class accuracy of any constant answer)."""
    train = [inst.action for inst in ann.split("train").values()]
    val = [inst.action for inst in ann.split("val").values()]
    common = max(set(train), key=train.count)
    top1 = 100 * float(np.mean([a == common for a in val]))
    return (f"always answering the train split's most frequent class scores {top1:.2f} top-1, and any constant "
            f"answer {100 / len(set(train) | set(val)):.2f} mean class accuracy.")


def main():
    ap = harness.arguments(__file__, __doc__, data=None, seeds=5, resume=True, tag=True,
                           data_help="default: /tmp/tapos_tsn_<preset>, /tmp/tapos_tsn_<preset>_like with --like")
    ap.add_argument("--preset", choices=list(PRESETS), default="signature", help="synthetic data settings")
    ap.add_argument("--like", action="append", default=[], metavar="ANNOTATIONS",
                    help="make --data over the structure of this annotation file (repeatable; tapos-data synth --like)")
    ap.add_argument("--max-instances", action="append", type=int, default=[], metavar="N",
                    help="at most N instances of each --like file (once for all, or once per --like)")
    ap.add_argument("--stride", type=int, default=1, help="a dataset made here keeps every S-th frame (tapos-data synth --stride)")
    ap.add_argument("--segments", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--parsers", nargs="*", default=PARSERS)
    args = harness.parse(ap)  # --resume: runs made with other --epochs or --segments are not told apart
    like = {"like": args.like, "max_instances": args.max_instances or None} if args.like else {}
    # as `tapos-data synth DATA --features --preset P --seed 11 [--stride S --like ...]`
    data = harness.synthetic(args.data or f"/tmp/tapos_tsn_{args.preset}{'_like' if args.like else ''}", seed=11,
                             features=True, preset=args.preset, stride=args.stride, **like)
    ann = load_annotations(data / "tapos_annotation.json")
    annotated = annotated_rows(data, ann, args.segments)
    rows = []
    runs_csv = args.out / f"tsn_runs{args.tag}.csv"
    if args.resume and runs_csv.exists():  # the same data and settings: --data is checked above
        rows = pd.read_csv(runs_csv).to_dict("records")
    done = {(r["sampling"], int(r["seed"])) for r in rows}
    for seed in range(args.seeds):
        schemes = {"uniform": ("uniform", None, {}), "aligned": ("aligned", None, {})}
        for method in args.parsers:
            if (f"parsed ({method})", seed) in done:
                continue
            parsed = cached_boundaries(method, data, ann, seed)
            val = parsed["val"]
            schemes[f"parsed ({method})"] = ("parsed", parsed["boundaries"],
                                             {"parser val F1 (rel)": 100 * val["val_f1_rel"],
                                              "parser val GEBD F1@0.05": 100 * val["val_gebd_f1_05"]})
        for label, (sampling, bounds, extra) in schemes.items():
            if (label, seed) in done:
                continue
            res = train(data / "features.h5", data / "tapos_annotation.json", sampling, "rgb+flow", boundaries=bounds,
                        seed=seed, progress=False, overrides={"segments": args.segments, "epochs": args.epochs})
            row = {"sampling": label, "seed": seed, **extra, **snippet_stats(data, ann, sampling, bounds, args.segments, annotated)}
            for mod, name in (("rgb", "RGB"), ("rgb+flow", "RGB+Flow")):
                row[f"{name} Top-1"], row[f"{name} Avg. Acc."] = res[mod]["top1"], res[mod]["mean_class"]
            rows.append(row)
            print(f"seed {seed} {label:<22} RGB+Flow top-1 {row['RGB+Flow Top-1']:.2f}", flush=True)
            harness.write_csv(args, runs_csv.name, pd.DataFrame(rows))  # a crash keeps the runs made
    table = summary(pd.DataFrame([r for r in rows if int(r["seed"]) < args.seeds]))  # --seeds N: a table of 0..N-1
    text = "\n".join([
        f"# Tables 1 and 4 on the synthetic TSN benchmark (data: preset {args.preset!r}"
        f"{', over the structure of ' + ' and '.join(Path(p).name for p in args.like) if args.like else ''}"
        f"; {len(ann.split('train'))} train / {len(ann.split('val'))} val instances; K = {args.segments}, val, "
        f"seeds 0..{args.seeds - 1})",
        "",
        "Each seed trains every parser as `tapos-parse train` does by default (supervised: epochs and options",
        "chosen on dev, carved from train; label-free (pa, kcpd, embed): on train, no boundary read) and every TSN;",
        "mean ± std over seeds, in percent. \"ahead of uniform\" (\"of parsed (prior)\"): seeds in which the scheme's",
        "RGB+Flow top-1 is above uniform sampling's (the content-free boundaries'). The parser columns are the parser's own boundary scores on val;",
        "\"boundaries / instance\": the boundaries the snippets follow (val; annotated for aligned);",
        "\"sub-actions seen\": how many different annotated sub-actions the test snippets land in (val);",
        "\"signature seen\": val instances in which a test snippet lands in the class's own brief sub-action.",
        "",
        f"Chance: {chance_line(ann)} Content-free samplings: uniform (even segments) and, where run,",
        "parsed (prior) (the train split's median count of boundaries, equally spaced: no feature read).",
        "",
        table.to_markdown(),
        "",
    ])
    harness.write_report(args, f"tsn_table{args.tag}.md", text)
    print(text)


if __name__ == "__main__":
    main()
