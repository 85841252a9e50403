"""Dataset statistics as in the paper's section 3.2 (Figures 1 and 2)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .annotations import Annotations
from .instances import boundary_positions  # noqa: F401 (part of the statistics' API)
from .io import atomic_write_text
from .machinery.plotting import pyplot, save_figure

BOUNDARY_BINS = 20  # bins of normalized time in the boundary-position distribution (Figure 2)


def instance_table(annotations: Annotations) -> pd.DataFrame:
    """One row per instance: key, action, subset, duration, frames, fps, sub-action count."""
    rows = [
        {
            "key": i.key,
            "action": i.action,
            "subset": i.subset,
            "duration_s": i.duration,
            "total_frames": i.total_frames,
            "fps": i.fps,
            "num_subactions": i.num_subactions,
        }
        for i in annotations.values()
    ]
    return pd.DataFrame(rows, columns=["key", "action", "subset", "duration_s", "total_frames", "fps", "num_subactions"])


def per_class_table(annotations: Annotations) -> pd.DataFrame:
    """Instances per class and split, mean duration and mean number of sub-actions per class."""
    df = instance_table(annotations)
    counts = pd.crosstab(df["action"], df["subset"])
    for subset in ("train", "val", "test"):
        if subset not in counts.columns and subset != "test":
            counts[subset] = 0
    counts = counts[[c for c in ("train", "val", "test") if c in counts.columns]]
    grouped = df.groupby("action")
    table = counts.assign(
        total=grouped.size(),
        mean_duration_s=grouped["duration_s"].mean(),
        mean_subactions=grouped["num_subactions"].mean(),
        mean_boundaries=grouped["num_subactions"].mean() - 1,
    )
    table.index.name = "action"
    return table


def summary_table(annotations: Annotations) -> pd.DataFrame:
    """Dataset-level figures: instances per split, classes, mean duration, fps range."""
    df = instance_table(annotations)
    rows = [("instances", len(df)), ("classes", df["action"].nunique())]
    for subset, n in df["subset"].value_counts().sort_index().items():
        rows.append((f"instances ({subset})", int(n)))
    rows += [
        ("mean duration (s)", round(float(df["duration_s"].mean()), 3)),
        ("mean sub-actions per instance", round(float(df["num_subactions"].mean()), 3)),
        ("fps min", round(float(df["fps"].min()), 3)),
        ("fps max", round(float(df["fps"].max()), 3)),
    ]
    if annotations.skipped:
        rows.append(("skipped malformed instances", len(annotations.skipped)))
    return pd.DataFrame(rows, columns=["statistic", "value"]).set_index("statistic")


def boundary_histogram(annotations: Annotations, bins: int = BOUNDARY_BINS) -> pd.DataFrame:
    """The probability distribution of boundary positions over normalized time (Figure 2)."""
    pos = boundary_positions(annotations)
    counts, edges = np.histogram(pos, bins=bins, range=(0.0, 1.0))
    prob = counts / counts.sum() if counts.sum() else counts.astype(float)
    return pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "count": counts, "probability": prob})


def save_figures(annotations: Annotations, out_dir) -> list:
    """Figure 1 (instances and mean sub-actions per class) and Figure 2 (boundary positions)."""
    plt = pyplot()
    out_dir = Path(out_dir)
    per_class = per_class_table(annotations)
    paths = []
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    labels = [str(a) for a in per_class.index]
    ax1.bar(labels, per_class["total"], color="#4C72B0")
    ax1.set_xlabel("action class")
    ax1.set_ylabel("instances")
    ax1.set_title("Instances per class")
    ax2.bar(labels, per_class["mean_subactions"], color="#DD8452")
    ax2.set_xlabel("action class")
    ax2.set_ylabel("mean sub-actions per instance")
    ax2.set_title("Sub-actions per class")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelrotation=90 if len(labels) > 12 else 0)
    paths.append(save_figure(fig, out_dir / "subactions_per_class.png"))

    hist = boundary_histogram(annotations)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.bar(hist["bin_start"], hist["probability"], width=1.0 / len(hist), align="edge", color="#55A868",
           edgecolor="white")
    ax.set_xlim(0, 1)
    ax.set_xlabel("boundary position (fraction of instance length)")
    ax.set_ylabel("probability")
    ax.set_title("Sub-action boundary positions")
    paths.append(save_figure(fig, out_dir / "boundary_positions.png"))
    return paths


def write_stats(annotations: Annotations, out_dir) -> list:
    """Save the tables as CSV and the figures as PNG under ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in (
        ("summary.csv", summary_table(annotations)),
        ("per_class.csv", per_class_table(annotations)),
        ("boundary_positions.csv", boundary_histogram(annotations)),
        ("instances.csv", instance_table(annotations)),
    ):
        path = out_dir / name
        atomic_write_text(path, table.to_csv(index=name in ("summary.csv", "per_class.csv")))
        paths.append(path)
    return paths + save_figures(annotations, out_dir)
