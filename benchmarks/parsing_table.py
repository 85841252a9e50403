"""The paper's Tables 2 and 3 and Figure 7 on the synthetic benchmark, held out and over seeds.

Every method is fitted on `train` minus the dev split (whole videos, ``tapos.data.selection``) and
scored once on `val`, which nothing selected on, in both protocols: the paper's (avg F1 over the
relative 0.05..0.5 and the absolute 5..50 frame thresholds) and GEBD's (F1@0.05 and the average
over 0.05..0.5). Methods that need boundaries choose their epoch and "auto" options on dev. The
label-free ones (supervision "none") run as a user without boundaries runs them, with their
defaults and no selection split, and once more with every tunable option chosen on dev
("(dev)" rows, marked as reading dev boundaries). Each configuration runs with ``--seeds N``
seeds; tables give mean ± std and the seeds in which one row is ahead of another.

- Table 2: every method (with its supervision and selection), TransParser ours, ``--preset paper`` and
  ``--preset ensemble`` (five models), ours and the ensemble also re-read with ``boundaries=count``
  (the same fitted models: the k strongest change peaks, k expected for the instance's length);
- label-free methods against PA on the three numbers issue #15 names (F1@0.05, GEBD avg, F1 abs);
- Table 3: TransParser with 1 or 2 SPS units, with and without the local loss, for our defaults
  and the paper preset (F1 over the absolute thresholds is the paper's Table 3 column);
- the smoothing table: our TransParser re-scored on val at each min_segment (chosen on dev; the
  others are shown, not chosen);
- Figure 7's layout: F1, precision and recall of every Table 2 method at each relative and
  absolute threshold (mean over seeds, shaded ± std).

    python benchmarks/parsing_table.py [--data /tmp/bench_demo] [--seeds 5] [--jobs 2] [--no-table3]
        [--set transition=1.5 --set drift_in_segment=1.0 --tag _hard] [--resume] [--out benchmarks/results]
    python benchmarks/parsing_table.py --data /tmp/tapos_like --tag _tapos_like \
        --like ../shared/tapos_gt/tapos_gt_train.pkl --max-instances 1200 \
        --like ../shared/tapos_gt/tapos_gt_val.pkl --max-instances 300

``--like FILE --max-instances N`` (repeatable) makes ``--data`` with ``tapos-data synth --like``:
synthetic features over the real structure of those annotation files (TAPOS: median 1-2
boundaries). Every table has the chance rows: ``prior`` (the fit split's median count, equally
spaced), ``prior (length)`` (the count expected for the instance's duration, fitted on the fit
split), ``prior (dev)`` (its count rule chosen on dev) and ``oracle-count`` (each val instance's true
count, equally spaced: reads val, a ceiling, never a method), and the column "ahead of prior
(seeds)": in how many seeds a row beats ``prior (dev)`` on GEBD F1@0.05 and on GEBD avg.

``--set`` generates ``--data`` with those synthetic settings when it is missing (``seed=N``: another
draw of the dataset; a folder generated with other settings is refused). ``--methods``: only those
methods' rows. ``--jobs``: fits in parallel processes of one thread each.
``--resume`` keeps the runs already in the CSV files (same configuration and seed) and runs the
rest. Writes ``parsing_runs{tag}.csv`` (one row per table, configuration and seed),
``parsing_curves{tag}.csv`` (per threshold), ``parsing_tables{tag}.md`` (with the command that
wrote it) and ``parsing_f1_threshold{tag}.png`` to ``--out``.
"""
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

import harness
from seeds import ahead, mean_std, spread
from tapos.data import FeatureDataset, TaposError, load_annotations
from tapos.data.priors import oracle_count_predictions
from tapos.data.machinery.cli_utils import parse_overrides
from tapos.data.machinery.plotting import pyplot, save_figure
from tapos.data.selection import DEV_FRACTION, selection
from tapos.data.synth import DEFAULTS as SYNTH_DEFAULTS
from tapos.evaluate import evaluate_tapos
from tapos.parse import PARSERS, FitOptions, get_parser, predict_dataset, validation_scores
from tapos.parse.count import fit_count_model

SUPERVISED = ["isba", "ctm", "tcn"]  # besides TransParser; the label-free methods come from PARSERS
SMOOTHING = (1, 2, 3, 4, 6, 8)
METRICS = ["F1 (rel)", "F1 (abs)", "GEBD F1@0.05", "GEBD avg", "precision (rel)", "recall (rel)", "boundaries/inst"]
NAMES = {"f1_rel": "F1 (rel)", "f1_abs": "F1 (abs)", "rec_rel": "recall (rel)", "rec_abs": "recall (abs)",
         "prec_rel": "precision (rel)", "prec_abs": "precision (abs)", "gebd_f1_05": "GEBD F1@0.05",
         "gebd_avg": "GEBD avg", "boundaries_per_instance": "boundaries/inst"}
PA_RACE = ["GEBD F1@0.05", "GEBD avg", "F1 (abs)"]  # issue #15: a label-free method beats PA on these
COUNT_READOUT = ("default", "ensemble")  # TransParser rows re-read with the count readout (no refit)
PRIOR = "prior (dev)"  # the chance row every method is compared with (its count chosen on dev)
ORACLE = "oracle-count"


def label_free() -> list:
    return [n for n, c in PARSERS.items() if c.supervision == "none"]


def tunable(name: str, key: str) -> bool:
    """Whether ``key="auto"`` is valid with the method's other defaults (embed tunes only its readout's)."""
    try:
        PARSERS[name](**{key: "auto"})
        return True
    except TaposError:
        return False


def jobs(table3: bool) -> list:
    """Every fit of one seed, in the order the tables show them: ``{job, method, cfg, select}``."""
    out = []
    for name in label_free():
        out.append({"job": name, "method": name, "cfg": {}, "select": "none"})
        auto = {k: "auto" for k in PARSERS[name].TUNABLE if tunable(name, k)}
        out.append({"job": f"{name} (dev)", "method": name, "cfg": auto, "select": "dev"})
    out += [{"job": n, "method": n, "cfg": {}, "select": "dev"} for n in SUPERVISED]
    out += [{"job": "prior", "method": "prior", "cfg": {}, "select": "dev"},
            {"job": "prior (length)", "method": "prior", "cfg": {"count": "length"}, "select": "dev"},
            {"job": PRIOR, "method": "prior", "cfg": {"count": "auto"}, "select": "dev"},
            {"job": ORACLE, "method": ORACLE, "cfg": {}, "select": "none"}]
    variants = [(1, False), (1, True), (2, False), (2, True)] if table3 else [(2, True)]
    for preset in ("default", "paper", "ensemble"):
        for units, local in (variants if preset != "ensemble" else [(2, True)]):  # Table 3: one model each
            out.append({"job": f"{preset}: x{units}" + (" + local loss" if local else ""), "method": "transparser",
                        "cfg": {"preset": preset, "units": units, "local_loss": local}, "select": "dev",
                        "table2": f"transparser ({preset})" if (units, local) == (2, True) else None})
    return out


# --- one fit, in a worker process ---------------------------------------------------------------
DATA: dict = {}


def load(data: str, modality: str, dev_fraction: float, threads: int) -> None:
    """Worker initializer: the datasets (each process opens the HDF5 cache itself)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    ann = load_annotations(Path(data) / "tapos_annotation.json")
    feats = Path(data) / "features.h5"
    sel = selection(ann, "dev", dev_fraction)
    DATA.update(train=FeatureDataset(feats, sel.fit, "all", modality),
                dev=FeatureDataset(feats, sel.select, "all", modality),
                val=FeatureDataset(feats, ann, "val", modality))


def score(parser, val) -> tuple:
    """Both protocols' table numbers and the per-threshold curves, from one pass of predictions."""
    preds = predict_dataset(parser, val)
    sc = validation_scores(parser, val, preds)
    res = evaluate_tapos({i.key: i for i in val.instances}, preds)
    curves = []
    for protocol, s in (("relative", res.relative), ("absolute", res.absolute)):
        for t, p, r, f in zip(s.thresholds, *s.prf):
            curves.append({"protocol": protocol, "threshold": float(t), "precision": p, "recall": r, "F1": f})
    return {table: sc[f"val_{key}"] for key, table in NAMES.items()}, curves


def oracle(seed: int) -> tuple:
    """The oracle-count row: each val instance's true count, equally spaced (no fit; the same for
    every seed)."""
    preds = oracle_count_predictions(DATA["val"].instances)
    sc = validation_scores(None, DATA["val"], preds)
    row = {"table": "table2", "config": ORACLE, "job": ORACLE, "seed": seed, "method": ORACLE,
           "supervision": "reads val (ceiling)", "selection": "—", "seconds": 0.0, "options": "{}",
           **{table: sc[f"val_{key}"] for key, table in NAMES.items()}}
    return [row], []


def run(job: dict, seed: int, epochs) -> tuple:
    """Fit one configuration with one seed; its table rows and curves."""
    if job["method"] == ORACLE:
        return oracle(seed)
    cls = PARSERS[job["method"]]
    cfg = dict(job["cfg"])
    if epochs and cls.has_epochs:
        cfg.setdefault("epochs", epochs)
    parser = get_parser(job["method"], **cfg)
    t = time.time()
    parser.fit(DATA["train"], DATA["dev"] if job["select"] == "dev" else None, FitOptions(seed=seed, progress=False))
    seconds = round(time.time() - t, 1)
    base = {"job": job["job"], "seed": seed, "method": job["method"], "supervision": cls.supervision,
            "selection": job["select"], "seconds": seconds,
            "options": json.dumps({k: parser.config[k] for k in cls.TUNABLE if k in parser.config})}
    rows, curves = [], []

    def record(table, config, **extra):
        numbers, curve = score(parser, DATA["val"])
        rows.append({"table": table, "config": config, **base, **numbers, **extra})
        curves.extend({"job": job["job"], "config": config, "seed": seed, **c} for c in curve if table == "table2")

    if job["method"] != "transparser":
        record("table2", job["job"])
        return rows, curves
    if job["cfg"]["preset"] != "ensemble":
        record("table3", job["job"])
    if job["table2"]:
        record("table2", job["table2"])
    if job["table2"] and job["cfg"]["preset"] in COUNT_READOUT:  # the same model read with boundaries=count
        config = dict(parser.config)
        parser.config["boundaries"], parser.count_model = "count", fit_count_model(DATA["train"])
        record("table2", f"{job['table2']} + count readout")
        parser.config = config
    if job["cfg"]["preset"] == "default" and job["table2"]:
        chosen = parser.config["min_segment"]
        for m in SMOOTHING:
            parser.config["min_segment"] = m
            record("smoothing", f"min_segment={m}", chosen=m == chosen)
        parser.config["min_segment"] = chosen
    return rows, curves


# --- the tables ----------------------------------------------------------------------------------
def plot_curves(curves: pd.DataFrame, configs, label_free_configs, path: Path) -> None:
    """Figure 7's layout: F1, precision, recall (columns) at the relative and absolute thresholds
    (rows); one line per configuration, mean over seeds, shaded ± std."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(15, 7), sharey=True)
    for i, protocol in enumerate(("relative", "absolute")):
        sub = curves[curves.protocol == protocol]
        for j, metric in enumerate(("F1", "precision", "recall")):
            ax = axes[i, j]
            for k, config in enumerate(configs):
                g = sub[sub.config == config].groupby("threshold")[metric]
                mean, std = g.mean(), g.std(ddof=0).fillna(0)
                style = "--" if config in label_free_configs else "-"
                ax.plot(mean.index, mean.values, style, marker="o", ms=3, label=config, color=f"C{k % 10}")
                ax.fill_between(mean.index, mean - std, mean + std, alpha=0.15, color=f"C{k % 10}")
            ax.set_title(f"{metric}, {protocol} distance")
            ax.set_xlabel("threshold (fraction of duration)" if protocol == "relative" else "threshold (frames)")
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("val score")
    axes[1, 0].set_ylabel("val score")
    axes[0, 2].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Every method against the threshold (dashed: label-free)")
    save_figure(fig, path)


def tables(runs: pd.DataFrame, train_n, dev_n, val_n, args) -> str:
    t2 = runs[runs.table == "table2"]
    table2 = mean_std(t2, "config", METRICS)
    meta = t2.drop_duplicates("config").set_index("config")
    table2.insert(0, "selection", meta.selection.reindex(table2.index).values)
    table2.insert(0, "supervision", meta.supervision.reindex(table2.index).values)
    if "transparser (default)" in table2.index:
        table2["TransParser ahead (seeds)"] = pd.Series(ahead(t2, "config", "transparser (default)", "F1 (rel)")
                                                        ).reindex(table2.index).fillna("—")
    if PRIOR in table2.index:
        table2["ahead of prior (seeds): GEBD F1@0.05, avg"] = [
            "—" if c in (PRIOR, ORACLE) else ", ".join(ahead(t2, "config", c, m).get(PRIOR, "—")
                                                      for m in ("GEBD F1@0.05", "GEBD avg")) for c in table2.index]
    free = [c for c in table2.index if meta.supervision.get(c) == "none" and c != "pa" and "pa" in table2.index]
    race = pd.DataFrame({m: [ahead(t2, "config", c, m)["pa"] for c in free] for m in PA_RACE}, index=free)
    what = (f"synthetic features over the structure of {' and '.join(Path(p).name for p in args.like)}"
            if args.like else "the synthetic benchmark")
    text = [
        f"# Parsing on {what} ({train_n} fit / {dev_n} dev / {val_n} val instances, "
        f"{args.modality}{f', a row every {args.stride} frames' if args.stride > 1 else ''}, seeds 0..{args.seeds - 1}"
        f"{', data ' + ' '.join(args.set) if args.set else ''})",
        "",
        "Every number is val, mean ± std over seeds. selection: where epochs and \"auto\" options were "
        "chosen (dev: a split carved from train, which reads its boundaries; none: defaults only, "
        "no boundary read anywhere). Chance rows: prior (the fit split's median boundary count, equally "
        "spaced, no feature read), prior (length) (the count expected for the instance's duration), "
        "prior (dev) (its count rule chosen on dev), oracle-count (each val "
        "instance's true count, equally spaced: it reads val, a ceiling and not a method).",
        "",
        "## Table 2",
        "",
        table2.to_markdown(),
        "",
        "Spread (max - min over seeds) of the relative avg F1: "
        + ", ".join(f"{c} {v:.4f}" for c, v in spread(t2, "config", "F1 (rel)").items()),
        "",
    ]
    if len(free):
        text += ["## Label-free methods against PA (seeds in which the method is ahead of PA)", "",
                 race.to_markdown(), ""]
    t3 = runs[runs.table == "table3"]
    if len(t3):
        text += ["## Table 3 (TransParser: units x local loss; F1 (abs) is the paper's Table 3 column)", "",
                 mean_std(t3, "config", ["F1 (abs)", "recall (abs)", "precision (abs)", "F1 (rel)",
                                         "GEBD F1@0.05"]).to_markdown(), ""]
    sm = runs[runs.table == "smoothing"]
    if len(sm):
        chosen = sm[sm.chosen.fillna(False).astype(bool)].sort_values("seed")
        text += ["## TransParser (ours, x2 + local loss) re-scored at each min_segment", "",
                 mean_std(sm, "config", ["F1 (rel)", "F1 (abs)", "GEBD F1@0.05", "boundaries/inst"]).to_markdown(),
                 "", "min_segment chosen on dev per seed: " + ", ".join(c.split("=")[1] for c in chosen.config), ""]
    return "\n".join(text)


def arguments():
    ap = harness.arguments(__file__, __doc__, data="/tmp/bench_demo", seeds=5, resume=True, jobs=True, tag=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="synthetic generator setting for a dataset made here (repeatable)")
    ap.add_argument("--like", action="append", default=[], metavar="ANNOTATIONS",
                    help="make --data over the structure of this annotation file (repeatable; tapos-data synth --like)")
    ap.add_argument("--max-instances", action="append", type=int, default=[], metavar="N",
                    help="at most N instances of each --like file (once for all, or once per --like)")
    ap.add_argument("--stride", type=int, default=1, help="a dataset made here keeps every S-th frame (tapos-data synth --stride)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of the trained methods (default: theirs)")
    ap.add_argument("--modality", default="rgb+flow")
    ap.add_argument("--dev-fraction", type=float, default=DEV_FRACTION)
    ap.add_argument("--no-table3", action="store_true", help="skip the units x local-loss ablation")
    ap.add_argument("--methods", nargs="+", default=None, help="run only these methods' configurations")
    ap.add_argument("--configs", nargs="+", default=None, metavar="JOB",
                    help="run only these configurations (names as printed, e.g. 'ensemble: x2 + local loss')")
    return ap


def main():
    args = harness.parse(arguments())
    settings = parse_overrides(args.set, {**SYNTH_DEFAULTS, "seed": 0})  # seed: the dataset's own
    like = {"like": args.like, "max_instances": args.max_instances or None} if args.like else {}
    data = harness.synthetic(args.data, features=True, stride=args.stride, **like, **settings)
    out = args.out
    paths = {k: out / f"parsing_{k}{args.tag}.{ext}" for k, ext in
             (("runs", "csv"), ("curves", "csv"), ("tables", "md"), ("f1_threshold", "png"))}
    rows, curves = [], []
    if args.resume and paths["runs"].exists():
        rows = pd.read_csv(paths["runs"]).to_dict("records")
        curves = pd.read_csv(paths["curves"]).to_dict("records") if paths["curves"].exists() else []
    done = {(r["job"], r["seed"]) for r in rows}
    todo = [(j, s) for s in range(args.seeds) for j in jobs(not args.no_table3)
            if (j["job"], s) not in done and (args.methods is None or j["method"] in args.methods)
            and (args.configs is None or j["job"] in args.configs)]
    order = {j["job"]: i for i, j in enumerate(jobs(True))}

    def save():  # after every fit: a crash keeps the rest
        harness.write_csv(args, paths["runs"].name, pd.DataFrame(rows))
        harness.write_csv(args, paths["curves"].name, pd.DataFrame(curves))

    init = (str(data), args.modality, args.dev_fraction, 1 if args.jobs > 1 else 0)
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"), initializer=load, initargs=init) as pool:
        futures = [(j, s, pool.submit(run, j, s, args.epochs)) for j, s in todo]
        for j, s, f in futures:
            new_rows, new_curves = f.result()
            rows += new_rows
            curves += new_curves
            save()
            r = new_rows[-1] if j["method"] != "transparser" else next(x for x in new_rows if x["table"] != "smoothing")
            print(f"{j['job']:<30} seed {s}: rel {r['F1 (rel)']:.4f} abs {r['F1 (abs)']:.4f} "
                  f"GEBD@0.05 {r['GEBD F1@0.05']:.4f} ({r['seconds']:.0f} s)", flush=True)
    runs = pd.DataFrame(rows)
    runs = runs[runs.seed < args.seeds]
    runs = runs.assign(_o=runs.job.map(order)).sort_values(["_o", "seed"], kind="stable").drop(columns="_o")
    load(*init)
    text = tables(runs, len(DATA["train"]), len(DATA["dev"]), len(DATA["val"]), args)
    curve_df = pd.DataFrame(curves)
    t2 = runs[runs.table == "table2"].drop_duplicates("config")
    shown = [c for c in t2.config if not c.endswith("(dev)")]  # each method as its users run it
    free = set(t2.config[t2.supervision == "none"])
    plot_curves(curve_df[curve_df.seed < args.seeds], shown, free, paths["f1_threshold"])
    text += f"\nFigure: `{paths['f1_threshold'].name}` (Figure 7's layout: {', '.join(shown)}).\n"
    harness.write_report(args, paths["tables"].name, text)
    print(text)


if __name__ == "__main__":
    main()
