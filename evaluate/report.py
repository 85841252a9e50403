"""Readable tables and the precision / recall / F1 figure (the paper's Figure 7)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from tapos.data.machinery.plotting import pyplot, save_figure

from .protocols import EvaluationResult, Scores
from .registry import PROTOCOLS


def scores_table(scores: Scores, unit: str) -> pd.DataFrame:
    prec, rec, f1 = scores.prf
    df = pd.DataFrame({"precision": prec, "recall": rec, "f1": f1},
                      index=pd.Index([f"{t:g}" for t in scores.thresholds], name=unit))
    df.loc["avg"] = [prec.mean(), rec.mean(), f1.mean()]
    return df


def result_tables(result: EvaluationResult) -> dict:
    unit = PROTOCOLS[result.protocol].relative_unit if result.protocol in PROTOCOLS else "rel. threshold"
    tables = {"relative": scores_table(result.relative, unit)}
    if result.absolute is not None:
        tables["absolute"] = scores_table(result.absolute, "frames")
    return tables


_HEADLINE_NAMES = {"f1@0.05": "F1@0.05", "avg_f1": "avg F1", "avg_f1_rel": "avg F1 (rel)",
                   "avg_f1_abs": "avg F1 (abs)"}


def reference_table(method: dict, lines: dict, margins: dict) -> pd.DataFrame:
    """The method's headline numbers, each reference line's, and the method's margin over the
    train-only lines (``tapos.evaluate.reference``), one row each."""
    rows = {"method": method, **lines, **{f"method - {name}": m for name, m in margins.items()}}
    df = pd.DataFrame.from_dict(rows, orient="index")
    return df.rename(columns=_HEADLINE_NAMES)


def class_table(by_class: dict) -> pd.DataFrame:
    rows = []
    for action, res in by_class.items():
        row = {"action": action, "instances": res.counts["videos"]}
        for name, sc in (("rel", res.relative), ("abs", res.absolute)):
            if sc is None:
                continue
            prec, rec, f1 = sc.prf
            row.update({f"{name} avg F1": f1.mean(), f"{name} avg P": prec.mean(), f"{name} avg R": rec.mean()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("action")


def _panel(ax, scores: Scores, xlabel: str, title: str) -> None:
    prec, rec, f1 = scores.prf
    x = list(scores.thresholds)
    ax.plot(x, f1, "o-", label=f"F1 (avg {f1.mean():.3f})", color="#C44E52")
    ax.plot(x, prec, "s--", label=f"precision (avg {prec.mean():.3f})", color="#4C72B0")
    ax.plot(x, rec, "^--", label=f"recall (avg {rec.mean():.3f})", color="#55A868")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def plot_result(result: EvaluationResult, path, title: str = "") -> Path:
    """Precision, recall and F1 against the threshold; two panels for the TAPOS protocol."""
    plt = pyplot()
    panels = [(result.relative, "relative distance (fraction of length)", "relative")]
    if result.absolute is not None:
        panels.append((result.absolute, "absolute distance (frames)", "absolute"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    for ax, (sc, xlabel, name) in zip(axes[0], panels):
        _panel(ax, sc, xlabel, f"{title} {name}".strip())
    return save_figure(fig, path, dpi=150)


def plot_by_class(by_class: dict, path) -> Path:
    """One panel per action class (relative distances)."""
    plt = pyplot()
    n = len(by_class)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    for ax, (action, res) in zip(axes.flat, by_class.items()):
        _panel(ax, res.relative, "relative distance", f"class {action} ({res.counts['videos']} inst.)")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return save_figure(fig, path, dpi=120)
