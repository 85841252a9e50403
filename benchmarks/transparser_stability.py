"""TransParser's spread over seeds: one model against the seed ensemble, on the synthetic benchmark.

Trains ``--seeds x max(--members)`` single TransParsers (seed j; epochs chosen on dev, never on
val) and, for each ensemble size K of ``--members``, assembles ensemble s from seeds
``s * K .. s * K + K - 1``, exactly the members that ``members=K`` with seed s trains; its
threshold is then tuned on dev. For seeds 0..N-1 it reports on val, mean +- std and spread
(max - min) of:

- one model (the change readout, ``members=1``, seed s), the ensemble of each size (``members=5``
  is ``--preset ensemble``) and the paper preset;
- every single model trained (all ``N x max(K)`` seeds): the spread one run of one model has;
- the dev F1 of a single model at each change-score window (how the default window was chosen);
- the change readout's threshold rule: absolute (the default: a peak reaches ``threshold``) or
  relative to the instance (a peak reaches ``threshold`` x the instance's highest score), each
  threshold chosen on dev, for every single model and every ensemble (why the rule is absolute);
- with ``--baselines`` (``parsing_runs.csv`` of parsing_table.py): in how many seeds the ensemble
  is ahead of each baseline (relative avg F1, seed s against seed s).

    python benchmarks/transparser_stability.py [--data /tmp/bench_demo] [--seeds 5] [--members 5 10]
        [--dev-fraction 0.1] [--tag _dev20] [--baselines benchmarks/results/parsing_runs.csv] [--work /tmp/tapos_stability] [--out benchmarks/results]

Trained members are kept in ``--work`` (a rerun reuses them). Writes ``transparser_stability.csv``
(one row per configuration and seed) and ``transparser_stability.md`` (with the command), each
name with ``--tag`` before its suffix.
"""
import time
from pathlib import Path

import pandas as pd
import torch

import harness
from parsing_table import METRICS, score  # the same scoring as Table 2
from seeds import ahead, mean_std, spread
from tapos.data import FeatureDataset, load_annotations
from tapos.data.selection import DEV_FRACTION, selection
from tapos.data.clock import row_boundary_frames
from tapos.parse import PARSERS, FitOptions, get_parser, validation_scores
from tapos.parse.segments import pick_peaks

CHANCE = ["prior", "prior (dev)", "oracle-count"]  # parsing_table.py's content-free rows

WINDOWS = (3, 4, 5, 6)
TP = PARSERS["transparser"]


def member(j, train, dev, work: Path, **cfg):
    """Single model of seed ``j`` (kept in ``work``: a rerun loads it)."""
    tag = "paper" if cfg.get("preset") == "paper" else "default"
    path = work / f"{tag}_seed{j}.pt"
    if path.exists():
        return TP.from_state(torch.load(path, weights_only=True)), None
    change = {} if tag == "paper" else {"boundaries": "change"}  # the readout of --preset ensemble
    parser = get_parser("transparser", members=1, **change, **cfg)
    t = time.time()
    parser.fit(train, dev, FitOptions(seed=j, progress=False))
    torch.save(parser.state(), path)
    return parser, time.time() - t


def ensemble(members, dev):
    """The ensemble ``--preset ensemble`` trains, from its members (as TransParser.fit assembles it)."""
    parser = TP.from_state(members[0].state())
    parser.assemble([m.model for m in members], get_parser("transparser", preset="ensemble", members=len(members)).config, dev)
    return parser


def ensemble_name(k: int) -> str:
    preset = TP.PRESETS["ensemble"]["members"]
    return f"ensemble (members={k}, --preset ensemble)" if k == preset else f"ensemble (members={k})"


FIXED = "fixed (no selection)"
RULES = {"absolute": lambda s, t: t, "relative to the instance's highest score": lambda s, t: t * s.max()}


def threshold_rules(parser, dev, val) -> list:
    """Val scores of the change readout under each rule of RULES, its threshold chosen on dev
    among TransParser's candidates (the scores are computed once per instance)."""
    def scores_of(ds):
        out = {}
        for i in range(len(ds)):
            item = ds[i]
            out[item["key"]] = (parser.change_score(parser.transform(item["features"].numpy())), item["frames"].numpy())
        return out

    def preds(cached, rule, t):
        w = int(parser.config["window"])
        return {k: row_boundary_frames(pick_peaks(s, RULES[rule](s, t), w), fr) for k, (s, fr) in cached.items()}

    on_dev, on_val, rows = scores_of(dev), scores_of(val), []
    for rule in RULES:
        best = max(TP.TUNABLE["threshold"], key=lambda t: validation_scores(parser, dev, preds(on_dev, rule, t))["val_f1_rel"])
        sc = validation_scores(parser, val, preds(on_val, rule, best))
        rows.append({"rule": rule, "threshold": best, "F1 (rel)": sc["val_f1_rel"], "F1 (abs)": sc["val_f1_abs"],
                     "GEBD F1@0.05": sc["val_gebd_f1_05"]})
    for t in sorted(TP.TUNABLE["threshold"]):  # no selection at all: what the dev choice adds to the spread
        sc = validation_scores(parser, val, preds(on_val, "absolute", t))
        rows.append({"rule": FIXED, "threshold": t, "F1 (rel)": sc["val_f1_rel"]})
    return rows


def thresholds_chosen(v: pd.Series) -> str:
    """The thresholds in seed order (``0.4, 0.4, 0.3``), or how often each was chosen when there are many."""
    if len(v) <= 10:
        return ", ".join(f"{t:g}" for t in v)
    return ", ".join(f"{t:g} x{n}" for t, n in sorted(v.value_counts().items()))


def fixed_table(rules: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: the thresholds dev chose (seed 0, 1, ...) and its val spread, then
    mean (spread) of the val F1 (rel) at each fixed absolute threshold."""
    chosen = rules[rules.rule == "absolute"]
    out = pd.DataFrame({"dev's thresholds": chosen.groupby("models", sort=False).threshold.agg(thresholds_chosen),
                        "spread, dev's choice": spread(chosen, "models", "F1 (rel)").map("{:.4f}".format)})
    for t, at in rules[rules.rule == FIXED].groupby("threshold"):
        mean = at.groupby("models", sort=False)["F1 (rel)"].mean()
        out[f"fixed {t:g}"] = mean.map("{:.3f}".format) + " (" + spread(at, "models", "F1 (rel)").map("{:.3f}".format) + ")"
    return out


def window_dev(parser, dev) -> dict:
    """Dev F1 (rel) of ``parser`` at each window, its threshold tuned on dev for each."""
    out, saved = {}, dict(parser.config)
    for w in WINDOWS:
        parser.config.update(window=w, threshold="auto")
        parser.tune(dev)
        out[f"dev F1 (rel), window {w}"] = validation_scores(parser, dev)["val_f1_rel"]
    parser.config = saved
    return out


def rule_table(rules: pd.DataFrame) -> pd.DataFrame:
    rules = rules[rules.rule != FIXED]
    rules = rules.assign(config=rules.models + ", " + rules.rule)
    table = mean_std(rules, "config", ["F1 (rel)", "F1 (abs)", "GEBD F1@0.05"])
    table.insert(0, "spread F1 (rel)", [f"{v:.4f}" for v in spread(rules, "config", "F1 (rel)").reindex(table.index)])
    return table


def main():
    ap = harness.arguments(__file__, __doc__, data="/tmp/bench_demo", seeds=5, tag=True)
    ap.add_argument("--members", type=int, nargs="+", default=[TP.PRESETS["ensemble"]["members"]],
                    help="ensemble sizes to assemble (each from its own members)")
    ap.add_argument("--modality", default="rgb+flow")
    ap.add_argument("--dev-fraction", type=float, default=DEV_FRACTION, help="share of train carved as dev")
    ap.add_argument("--baselines", default=None, help="parsing_runs.csv whose table2 rows are the baselines")
    ap.add_argument("--work", default="/tmp/tapos_stability")
    args = harness.parse(ap)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = harness.synthetic(args.data, check=False, features=True)  # when missing: the default (as `make demo`)
    ann = load_annotations(data / "tapos_annotation.json")
    sel = selection(ann, "dev", args.dev_fraction)
    train = FeatureDataset(data / "features.h5", sel.fit, "all", args.modality)
    dev = FeatureDataset(data / "features.h5", sel.select, "all", args.modality)
    val = FeatureDataset(data / "features.h5", ann, "val", args.modality)
    rows, singles, rules = [], {}, []

    def record(config, seed, parser, extra=None):
        rows.append({"config": config, "seed": seed, **score(parser, val)[0], **(extra or {})})
        print(f"{config:<34} seed {seed}: rel {rows[-1]['F1 (rel)']:.4f}", flush=True)
        harness.write_csv(args, f"transparser_stability{args.tag}.csv", pd.DataFrame(rows))

    sizes = sorted(set(args.members))
    single_rules = {}  # seed -> threshold_rules of that single model (computed once, reported twice)
    for j in range(args.seeds * sizes[-1]):
        singles[j], seconds = member(j, train, dev, work)
        record("single model, every seed", j, singles[j], window_dev(singles[j], dev))
        single_rules[j] = threshold_rules(singles[j], dev, val)
        rules += [{"models": "single model, every seed", "seed": j, **r} for r in single_rules[j]]
        if seconds:
            print(f"  trained in {seconds:.0f} s", flush=True)
    for s in range(args.seeds):
        record("one model (change readout, members=1)", s, singles[s])
        rules += [{"models": "one model (members=1)", "seed": s, **r} for r in single_rules[s]]
        for K in sizes:
            ens = ensemble([singles[j] for j in range(s * K, s * K + K)], dev)
            record(ensemble_name(K), s, ens)
            rules += [{"models": f"ensemble (members={K})", "seed": s, **r} for r in threshold_rules(ens, dev, val)]
        paper, _ = member(s, train, dev, work, preset="paper")
        record("paper preset", s, paper)
    runs = pd.DataFrame(rows)
    table2 = None
    if args.baselines:  # chance beside the models: the content-free rows of the same data and seeds
        base = pd.read_csv(args.baselines)
        table2 = base[base.table == "table2"]
        chance = table2[table2.config.isin(CHANCE) & (table2.seed < args.seeds)]
        runs = pd.concat([runs, chance[["config", "seed", *METRICS]]], ignore_index=True)
    table = mean_std(runs, "config", METRICS)
    table.insert(0, "spread F1 (rel)", [f"{v:.4f}" for v in spread(runs, "config", "F1 (rel)").reindex(table.index)])
    every = runs[runs.config == "single model, every seed"]
    windows = every[[f"dev F1 (rel), window {w}" for w in WINDOWS]].agg(["mean", "std"]).T
    text = [
        f"# TransParser over seeds ({len(train)} fit / {len(dev)} dev / {len(val)} val instances, {args.modality}, "
        f"dev fraction {args.dev_fraction:g})",
        "",
        f"Val scores, mean ± std over seeds 0..{args.seeds - 1} (the single-model row: over all "
        f"{args.seeds * sizes[-1]} seeds trained); spread = max - min of the relative avg F1."
        + (f" Chance rows ({', '.join(CHANCE)}: content-free boundaries, oracle-count reads val) from "
           f"`{args.baselines}`, the same data and seeds." if args.baselines else ""),
        "",
        table.to_markdown(),
        "",
        "Dev F1 (rel) of one model at each change-score window (threshold tuned on dev), over every seed:",
        "",
        windows.to_markdown(floatfmt=".4f"),
        "",
        "The change readout's threshold rule (threshold chosen on dev for each; val scores):",
        "",
        rule_table(pd.DataFrame(rules)).to_markdown(),
        "",
        "Where the remaining spread comes from: the absolute threshold each seed's dev split chose, and "
        "the val F1 (rel) at every fixed threshold, mean (spread) over the same seeds (a diagnosis: "
        "no threshold is chosen on val here):",
        "",
        fixed_table(pd.DataFrame(rules)).to_markdown(),
        "",
    ]
    if table2 is not None:
        base = table2[["config", "seed", "F1 (rel)"]]
        for K in sizes:
            ens = runs[runs.config == ensemble_name(K)][["config", "seed", "F1 (rel)"]]
            both = pd.concat([ens.assign(config="ensemble"), base[base.seed.isin(ens.seed)]])
            ahead_of = {c: v for c, v in ahead(both, "config", "ensemble", "F1 (rel)").items()
                        if not c.startswith("transparser")}
            text += [f"Ensemble of {K} ahead of each baseline of `{args.baselines}` (seeds): "
                     + ", ".join(f"{c} {v}" for c, v in ahead_of.items()), ""]
    harness.write_report(args, f"transparser_stability{args.tag}.md", "\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
