"""Results over seeds, the same way in every benchmark: mean ± std per configuration, the spread
(max - min), and in how many seeds one configuration is ahead of another (seed s against seed s).

The benchmark scripts import it as a sibling module (``python benchmarks/x.py`` puts
``benchmarks/`` on the path)."""
from __future__ import annotations

import pandas as pd


def mean_std(runs: pd.DataFrame, by: str, metrics, digits: int = 4) -> pd.DataFrame:
    """One ``"mean ± std"`` string per configuration (``by``, in the order first seen) and metric
    (population std over seeds; empty where a metric is missing), and a ``seeds`` column."""
    order = list(dict.fromkeys(runs[by]))
    g = runs.groupby(by, sort=False)
    out = pd.DataFrame(index=pd.Index(order, name=by))
    for m in metrics:
        mean, std = g[m].mean().reindex(order), g[m].std(ddof=0).reindex(order)
        out[m] = [f"{a:.{digits}f} ± {b:.{digits}f}" if pd.notna(a) else "" for a, b in zip(mean, std)]
    out["seeds"] = g.size().reindex(order).values
    return out


def spread(runs: pd.DataFrame, by: str, metric: str) -> pd.Series:
    """max - min over seeds of ``metric`` per configuration."""
    return runs.groupby(by, sort=False)[metric].agg(lambda v: v.max() - v.min())


def ahead(runs: pd.DataFrame, by: str, ours: str, metric: str, seed: str = "seed") -> dict:
    """``{other configuration: "k/n"}``: in k of the n seeds that both ran, ``ours`` scores higher
    on ``metric`` than the other configuration with the same seed."""
    piv = runs.pivot_table(index=seed, columns=by, values=metric)
    out = {}
    for c in piv.columns:
        if c == ours:
            continue
        both = piv[[ours, c]].dropna()
        out[c] = f"{int((both[ours] > both[c]).sum())}/{len(both)}"
    return out
