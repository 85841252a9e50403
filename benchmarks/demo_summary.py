"""make demo's closing summary: what was written where, and the headline numbers next to chance.

    python benchmarks/demo_summary.py DEMO [--out DIR]

Reads what ``make demo`` wrote in DEMO: each evaluation JSON holds its reference lines (what
content-free boundaries score on the same instances: prior, prior-best, prior-length, and
oracle-count, which reads the evaluated split and is a ceiling), and each TSN run its
results.json. Prints the summary and writes it to ``summary.md`` in ``--out`` (default: DEMO).
Missing outputs (a demo stopped early) show as "—".
"""
import json
from pathlib import Path

import pandas as pd

import harness

OUTPUTS = [  # (paths below DEMO, what they hold), in the order the demo writes them
    (["stats/"], "dataset statistics: tables and figures (the paper's Figures 1-2)"),
    (["eval_tapos.json", "eval_gebd.json"], "4 equal parts per instance, scored with both protocols"),
    (["eval_human.json"], "agreement of the simulated annotators"),
    (["transparser/"], "TransParser trained on the synthetic features"),
    (["eval_transparser.json"], "its val boundaries, TAPOS protocol"),
    (["report/index.html"], "what its patterns say about the actions"),
    (["timeline.png"], "one instance's parsed timeline"),
    (["small/extracted.h5"], "BNInception RGB + flow features extracted from rendered source videos"),
    (["small/eval_kmeans.json"], "k-means trained on them, TAPOS protocol"),
    (["small/my_video/"], "a whole source video parsed as a video of your own"),
    (["tsn_table.md"], "TSN with uniform, aligned and parsed (kcpd) snippets"),
]
PARSING = [  # (evaluation JSON below DEMO, what was evaluated)
    ("eval_transparser.json", "TransParser"),
    ("small/eval_kmeans.json", "k-means (extracted features)"),
    ("eval_tapos.json", "4 equal parts"),
    ("eval_gebd.json", "4 equal parts"),
]
TSN = ["tsn/uniform", "tsn/aligned", "tsn/parsed"]
TRAIN_ONLY = ("prior", "prior-best", "prior-length")  # chance lines chosen on train (oracle-count reads val)
MISSING = "—"


def headline(result: dict) -> tuple:
    """(F1@0.05, average F1 over the relative thresholds) of one evaluation in the JSON layout."""
    f1 = result["relative"]["f1"]
    return f1[0], sum(f1) / len(f1)


def pair(a: float, b: float, sign: str = "") -> str:
    return f"{a:{sign}.3f} / {b:{sign}.3f}"


def parsing_row(demo: Path, name: str, what: str) -> dict:
    """One evaluation: its headline numbers, the strongest train-only chance line's (by average F1),
    the margin over it, and the count ceiling's."""
    path = demo / name
    if not path.is_file():
        return {"result": what}
    res = json.loads(path.read_text())
    mine, ref = headline(res), res.get("reference", {})
    row = {"result": what, "protocol": res["protocol"], "F1@0.05 / avg F1": pair(*mine)}
    lines = {k: headline(v) for k, v in ref.items() if k in TRAIN_ONLY}
    if lines:
        best = max(lines, key=lambda k: lines[k][1])
        row.update({"chance (best line chosen on train)": f"{best}: {pair(*lines[best])}",
                    "margin": pair(mine[0] - lines[best][0], mine[1] - lines[best][1], "+")})
    if "oracle-count" in ref:
        row["ceiling (oracle-count)"] = pair(*headline(ref["oracle-count"]))
    return row


def human_row(demo: Path) -> dict:
    """The simulated annotators against each other, averaged over annotators."""
    what = "human agreement (simulated annotators)"
    path = demo / "eval_human.json"
    if not path.is_file():
        return {"result": what}
    per = [headline(r) for r in json.loads(path.read_text()).values()]
    return {"result": what, "protocol": "tapos",
            "F1@0.05 / avg F1": pair(sum(p[0] for p in per) / len(per), sum(p[1] for p in per) / len(per))}


def tsn_rows(demo: Path) -> list:
    """Each TSN run's top-1 and mean class accuracy (RGB + flow fused), and chance (one class in N)."""
    rows = []
    for run in TSN:
        path = demo / run / "results.json"
        if not path.is_file():
            rows.append({"sampling": Path(run).name})
            continue
        res = json.loads(path.read_text())
        fused = res["results"].get("rgb+flow") or next(iter(res["results"].values()))
        rows.append({"sampling": res["config"]["label"], "top-1 (%)": f"{fused['top1']:.1f}",
                     "mean class acc. (%)": f"{fused['mean_class']:.1f}",
                     "chance (%)": f"{100 / res['config']['num_classes']:.1f}"})
    return rows


def table(rows: list, index: str) -> str:
    return pd.DataFrame(rows).set_index(index).fillna(MISSING).to_markdown()


def summary(demo: Path) -> str:
    written = [f"- {', '.join(f'`{demo / p}`' for p in paths)}: {what}" for paths, what in OUTPUTS]
    return "\n".join([
        f"# make demo: the summary ({demo})", "", "Written:", "", *written, "",
        "Boundaries on val (synthetic data), F1@0.05 / average F1 over the relative thresholds, next to the "
        "strongest chance line chosen on train (equally spaced boundaries, no feature read) and the count "
        "ceiling (oracle-count reads val):", "",
        table([parsing_row(demo, n, w) for n, w in PARSING] + [human_row(demo)], "result"), "",
        "TSN on the signature data (val, RGB + flow fused; one seed, 10 epochs; benchmarks/tsn_table.py has every parser over 5 seeds):", "",
        table(tsn_rows(demo), "sampling"), "",
    ])


def main():
    ap = harness.arguments(__file__, __doc__, out=None)
    ap.add_argument("demo", type=Path, help="the folder make demo wrote (DEMO=..., default demo/)")
    args = harness.parse(ap)
    demo = harness.existing(args.demo, "tapos_annotation.json")
    args.out = args.out or demo
    text = summary(demo)
    print(text)
    harness.write_report(args, "summary.md", text)
    print(f"(also in {args.out / 'summary.md'})")


if __name__ == "__main__":
    main()
