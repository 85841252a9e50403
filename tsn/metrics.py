"""Classification metrics in the paper's terms, the Tables 1/4 layout, and figures."""
from __future__ import annotations

import numpy as np

from tapos.data.machinery.plotting import pyplot, save_figure

_NAMES = {"rgb": "RGB", "flow": "Flow", "rgb+flow": "RGB+Flow"}


def accuracy(scores: np.ndarray, labels: np.ndarray) -> dict:
    """``top1``: share of instances whose best class is right; ``mean_class``: the mean over the
    classes present of each class's top-1 (the paper's "Avg. Acc."). Both in percent."""
    pred = np.asarray(scores).argmax(1)
    labels = np.asarray(labels)
    per_class = [float((pred[labels == c] == c).mean()) for c in np.unique(labels)]
    return {"top1": 100.0 * float((pred == labels).mean()), "mean_class": 100.0 * float(np.mean(per_class))}


def fuse(scores: dict, weights: dict) -> np.ndarray:
    """Late fusion: the weighted average of the modalities' softmax scores."""
    total = sum(weights.get(m, 1.0) for m in scores)
    return sum(weights.get(m, 1.0) * s for m, s in scores.items()) / total


def scores_table(rows: dict):
    """``{sampling label: results}`` -> a table laid out like the paper's Tables 1 and 4:
    one row per sampling scheme, Top-1 and Avg. Acc. per modality (and fusion), in percent."""
    import pandas as pd

    records = {}
    for label, res in rows.items():
        rec = {}
        for mod in ("rgb", "flow", "rgb+flow"):
            if mod in res:
                rec[f"{_NAMES[mod]} Top-1"] = res[mod]["top1"]
                rec[f"{_NAMES[mod]} Avg. Acc."] = res[mod]["mean_class"]
        records[label] = rec
    table = pd.DataFrame.from_dict(records, orient="index")
    table.index.name = "sampling"
    return table


def plot_confusion(scores: np.ndarray, labels: np.ndarray, num_classes: int, path, title: str = ""):
    """Row-normalized confusion matrix (true class x predicted class)."""
    pred = np.asarray(scores).argmax(1)
    cm = np.zeros((num_classes, num_classes))
    np.add.at(cm, (np.asarray(labels), pred), 1)
    cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    plt = pyplot()
    size = max(4.0, 0.35 * num_classes + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    ticks = np.arange(num_classes)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path)


def plot_history(history: list, path):
    """Training loss and val top-1 per epoch, one line per modality."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for mod in dict.fromkeys(r["modality"] for r in history):
        rows = [r for r in history if r["modality"] == mod]
        ax1.plot([r["epoch"] for r in rows], [r["loss"] for r in rows], "o-", ms=3, label=mod)
        ax2.plot([r["epoch"] for r in rows], [r["val_top1"] for r in rows], "o-", ms=3, label=mod)
    ax1.set_title("training loss")
    ax2.set_title("val top-1")
    ax2.set_ylim(0, 1)
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return save_figure(fig, path)
