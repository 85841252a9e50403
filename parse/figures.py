"""Figures of parsing results: the class x pattern heatmap, the discriminative sub-action bars and
one instance's timeline. Every figure draws on a headless backend and is saved atomically."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from tapos.data.machinery.plotting import pyplot, save_figure

from .segments import change_points, spans


def pattern_colours(m: int) -> np.ndarray:
    """One RGBA colour per pattern, the same in every figure (tab20 then tab20b; hsv beyond 40)."""
    import matplotlib

    if m <= 40:
        base = [matplotlib.colormaps["tab20"](i) for i in range(20)] + \
               [matplotlib.colormaps["tab20b"](i) for i in range(20)]
        return np.array(base[:m])
    return matplotlib.colormaps["hsv"](np.linspace(0, 1, m, endpoint=False))


def plot_usage(usage, path, title: str = "") -> None:
    """Heatmap of each class's share of frames per pattern (patterns used anywhere), frame counts
    written in the cells."""
    plt = pyplot()
    used = usage.loc[:, usage.sum(axis=0) > 0]
    share = used.div(used.sum(axis=1).replace(0, 1), axis=0)
    w = max(4.0, 0.45 * used.shape[1] + 2)
    h = max(2.5, 0.4 * used.shape[0] + 1.5)
    fig, ax = plt.subplots(figsize=(w, h))
    im = ax.imshow(share.to_numpy(), cmap="viridis", vmin=0, vmax=max(float(share.to_numpy().max()), 1e-9),
                   aspect="auto")
    ax.set_xticks(range(used.shape[1]), [f"p{k}" for k in used.columns], rotation=90, fontsize=8)
    ax.set_yticks(range(used.shape[0]), [f"class {c}" for c in used.index], fontsize=8)
    if used.size <= 600:
        for (i, j), v in np.ndenumerate(used.to_numpy()):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=6,
                        color="black" if share.iat[i, j] > 0.5 * share.to_numpy().max() else "white")
    ax.set_xlabel("pattern (argmax of the parser's response)")
    ax.set_title(title or "share of each class's frames per pattern")
    fig.colorbar(im, ax=ax, fraction=0.03, label="share of the class's frames")
    save_figure(fig, path)


def plot_discriminative(segments, path, title: str = "") -> None:
    """Per class, the accuracy of classifying each sub-action position alone (grouped bars)."""
    plt = pyplot()
    acc = segments.groupby(["class", "position"])["correct"].mean().unstack("position")
    classes, positions = list(acc.index), list(acc.columns)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(classes) + 2), 4.0))
    width = 0.8 / max(len(positions), 1)
    cmap = plt.get_cmap("viridis")
    for j, pos in enumerate(positions):
        heights = acc[pos].to_numpy(dtype=float)  # NaN: the class has no sub-action at this position
        heights = np.where(heights == 0, 0.01, heights)  # a sliver, so 0% differs from "no such sub-action"
        ax.bar(np.arange(len(classes)) + (j - (len(positions) - 1) / 2) * width, heights,
               width, label=f"sub-action {pos}", color=cmap(j / max(len(positions) - 1, 1)))
    ax.set_xticks(range(len(classes)), [f"class {c}" for c in classes], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy on that sub-action alone")
    ax.set_title(title or "which sub-action identifies the class")
    ax.legend(fontsize=7, ncol=min(len(positions), 6), loc="upper center", bbox_to_anchor=(0.5, -0.12),
              frameon=False)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def _bands(ax, starts, ends, colours, labels=None, y=0.0, h=1.0, min_label=0.0):
    """Coloured spans; a span narrower than ``min_label`` (x units) gets no label."""
    for i, (s, e) in enumerate(zip(starts, ends)):
        ax.broken_barh([(s, e - s)], (y, h), facecolors=colours[i], edgecolor="white", linewidth=0.5)
        if labels is not None and labels[i] is not None and e - s >= min_label:
            ax.text((s + e) / 2, y + h / 2, labels[i], ha="center", va="center", fontsize=7, clip_on=True)


def plot_timeline(path, times: np.ndarray, duration: float, predicted: Sequence[float],
                  truth: Optional[Sequence[float]] = None, responses: Optional[np.ndarray] = None,
                  labels: Optional[np.ndarray] = None, thumbnails: Optional[list] = None, title: str = "") -> None:
    """One instance as a strip over time (seconds): thumbnails at the predicted segment centres,
    annotated and predicted segments, the pattern of each row as coloured bands and the response
    to each pattern used as a heatmap. ``times``: the start time of each row; ``thumbnails``:
    ``[(seconds, RGB array), ...]``."""
    plt = pyplot()
    panels = (["thumbs"] if thumbnails else []) + ["segments"] + (["labels", "heat"] if responses is not None else [])
    used = (np.flatnonzero(responses.max(0) >= 0.5 * responses.max()) if responses is not None else [])
    if responses is not None and labels is not None:
        used = np.union1d(used, np.unique(labels)).astype(int)
    ratios = {"thumbs": 1.6, "segments": 0.9, "labels": 0.5, "heat": max(1.0, 0.16 * len(used))}
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, sum(ratios[p] for p in panels) + 0.8), sharex=True,
                             gridspec_kw={"height_ratios": [ratios[p] for p in panels]}, squeeze=False)
    ax_of = dict(zip(panels, axes[:, 0]))
    times = np.asarray(times, dtype=np.float64)
    if thumbnails:
        # a filmstrip: evenly spaced frames (aspect kept) joined by a line to their segment's centre
        ax = ax_of["thumbs"]
        slot = duration / len(thumbnails)
        sec_per_inch = duration / (fig.get_figwidth() * 0.82)
        for i, (centre, img) in enumerate(thumbnails):
            w = min(0.95 * slot, ratios["thumbs"] * 0.7 * img.shape[1] / img.shape[0] * sec_per_inch)
            mid = (i + 0.5) * slot
            ax.imshow(img, extent=(mid - w / 2, mid + w / 2, 0.25, 1.0), aspect="auto", interpolation="bilinear")
            ax.plot([mid, centre], [0.25, 0.0], color="0.4", lw=0.8)
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.set_ylabel("frames", fontsize=8)
    ax = ax_of["segments"]
    grey = [(0.55, 0.55, 0.55, 1), (0.8, 0.8, 0.8, 1)]
    rows = [("predicted", predicted)] + ([("annotated", truth)] if truth is not None else [])
    for i, (name, bounds) in enumerate(rows):
        s, e = zip(*spans([float(b) for b in bounds], float(duration)))
        _bands(ax, s, e, [grey[j % 2] for j in range(len(s))], [str(j + 1) for j in range(len(s))], y=i, h=0.8,
               min_label=0.02 * duration)
    ax.set_yticks([i + 0.4 for i in range(len(rows))], [r[0] for r in rows], fontsize=8)
    ax.set_ylim(-0.1, len(rows))
    if responses is not None:
        colours = pattern_colours(responses.shape[1])
        ax = ax_of["labels"]
        lab = np.asarray(labels if labels is not None else responses.argmax(1))
        starts = np.concatenate([[0], change_points(lab)])
        stops = np.append(starts[1:], len(lab))
        _bands(ax, times[starts], np.append(times, duration)[stops], [colours[lab[s]] for s in starts],
               [f"p{lab[s]}" for s in starts], min_label=0.03 * duration)
        ax.set_yticks([])
        ax.set_ylabel("pattern", fontsize=8)
        ax = ax_of["heat"]
        heat = responses[:, used].T
        ax.imshow(heat, aspect="auto", cmap="magma", interpolation="nearest", vmin=0,
                  extent=(0, duration, len(used) - 0.5, -0.5))
        ax.set_yticks(range(len(used)), [f"p{k}" for k in used], fontsize=7)
        ax.set_ylabel("response", fontsize=8)
    last = axes[-1, 0]
    last.set_xlim(0, duration)
    last.set_xlabel("seconds")
    for b in predicted:
        for name, a in ax_of.items():
            if name != "thumbs":
                a.axvline(b, color="crimson", lw=0.8, alpha=0.8)
    axes[0, 0].set_title(title)
    save_figure(fig, path)
