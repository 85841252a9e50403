"""The ``tapos-parse analyze`` report: a self-contained static HTML page (``index.html``, figures
and thumbnails beside it, no script, no network) over the tables of an :class:`Analysis`, which
are also written as CSV and JSON."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Optional

import numpy as np

from tapos.data.io import atomic_write_text

from .analyze import Analysis
from .figures import pattern_colours, plot_discriminative, plot_usage

_CSS = """body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f3f3f3}img.fig{max-width:100%}img.thumb{height:72px;margin:1px}
.chip{display:inline-block;padding:1px 6px;margin:1px;border-radius:4px;font-size:12px;color:#000}
.note{color:#555;font-size:13px}"""


def _chip(k: int, colours) -> str:
    r, g, b = (int(255 * c) for c in colours[int(k)][:3])
    return f'<span class="chip" style="background:rgb({r},{g},{b})">p{int(k)}</span>'


def _table(headers, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(v) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.1f}%"


def write_tables(a: Analysis, out: Path) -> list:
    """The analysis as CSV/JSON files in ``out``; returns their names."""
    atomic_write_text(out / "usage.csv", a.usage.to_csv())
    shared = a.shared.assign(classes=a.shared["classes"].map(lambda v: " ".join(map(str, v))),
                             shares=a.shared["shares"].map(lambda v: " ".join(f"{x:.4f}" for x in v)))
    tables = {"shared_patterns.csv": shared,
              "sequences.csv": a.sequences.assign(typical=a.sequences["typical"].map(lambda v: " ".join(map(str, v)))),
              "exemplars.csv": a.exemplars, "segments.csv": a.segments}
    if len(a.discriminative):
        tables["discriminative.csv"] = a.discriminative
    for name, table in tables.items():
        atomic_write_text(out / name, table.to_csv(index=False))
    names = ["usage.csv", *tables]
    summary = {"method": a.method, "modality": a.modality, "split": a.split, "patterns": a.patterns,
               "frames": a.frames, "instances": a.instances, "classifier": a.classifier,
               "patterns_used": a.patterns_used, "shared_patterns": len(a.shared),
               "recovery": a.recovery}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=float))
    return names + ["summary.json"]


def write_report(a: Analysis, out_dir, annotations=None, videos=None, title: Optional[str] = None) -> Path:
    """Write ``out_dir/index.html`` with its figures, thumbnails (with ``videos``: exemplar frames
    cut from the videos, which needs ``annotations``) and tables. Returns the page's path."""
    out = Path(out_dir)
    (out / "img").mkdir(parents=True, exist_ok=True)
    files = write_tables(a, out)
    colours = pattern_colours(a.patterns)
    plot_usage(a.usage, out / "img" / "usage.png", f"{a.method}: share of each class's frames per pattern")
    if len(a.discriminative):
        plot_discriminative(a.segments, out / "img" / "discriminative.png")
    thumbs, failures = _thumbnails(a, out, annotations, videos)
    exemplars = _Exemplars(a.exemplars, thumbs)
    parts = [f"<h1>{html.escape(title or f'{a.method} patterns')}</h1>",
             f'<p>{a.instances} {html.escape(a.split)} instances, {a.frames} frames, method <b>{a.method}</b> on '
             f'{a.modality} features; {a.patterns_used} of {a.patterns} patterns are the argmax '
             f'of some frame; {len(a.shared)} are shared by two or more classes.</p>',
             *_usage_section(a, colours, exemplars), *_sequences_section(a, colours),
             *_exemplars_section(a, colours, exemplars), *_discriminative_section(a, colours),
             *_recovery_section(a, colours)]
    if failures:
        parts.append(f'<p class="note">{len(failures)} thumbnails missing; first: {html.escape(failures[0])}</p>')
    parts.append("<h2>Data</h2><p>" + " &middot; ".join(f'<a href="{f}">{f}</a>' for f in files) + "</p>")
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title or a.method)}'
            f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    path = out / "index.html"
    atomic_write_text(path, page)
    return path


def _thumbnails(a: Analysis, out: Path, annotations, videos) -> tuple:
    """The exemplars' frames cut from the videos as ``out/img/p<pattern>_<rank>.png``: ``({(pattern,
    rank): relative path}, [failures])``; none without videos and annotations."""
    if videos is None or annotations is None or not len(a.exemplars):
        return {}, []
    from .thumbnails import Thumbnailer, save_png

    shot, thumbs = Thumbnailer(videos), {}
    for r in a.exemplars.itertuples(index=False):
        img = shot(annotations[r.key], r.seconds)
        if img is not None:
            name = f"img/p{r.pattern}_{r.rank}.png"
            save_png(img, out / name)
            thumbs[(r.pattern, r.rank)] = name
    return thumbs, shot.failures


class _Exemplars:
    """A pattern's exemplar cells: its thumbnails, or a caption where a frame could not be cut."""

    def __init__(self, exemplars, thumbs: dict):
        self.exemplars, self.thumbs = exemplars, thumbs

    def cells(self, p: int) -> str:
        out = []
        for r in self.exemplars[self.exemplars["pattern"] == p].itertuples(index=False):
            cap = html.escape(f"{r.key} @ {r.seconds:.2f} s (frame {r.frame:g}), response {r.response:.2f}")
            name = self.thumbs.get((r.pattern, r.rank))
            out.append(f'<img class="thumb" src="{name}" title="{cap}" alt="{cap}">' if name else
                       f'<span class="note">{cap}</span><br>')
        return "".join(out)


def _usage_section(a: Analysis, colours, exemplars: _Exemplars) -> list:
    parts = ["<h2>Pattern usage</h2>",
             '<p class="note">Share of each class\'s frames whose strongest pattern is each one (counts in the '
             'cells; they sum to the frames analysed).</p>',
             '<img class="fig" src="img/usage.png" alt="class x pattern usage">',
             "<h2>Shared sub-actions (inter-action)</h2>"]
    if not len(a.shared):
        return parts + ['<p class="note">No pattern is used by two classes.</p>']
    rows = [[_chip(r.pattern, colours), ", ".join(f"class {c} ({_pct(s)})" for c, s in zip(r.classes, r.shares)),
             r.frames, exemplars.cells(r.pattern)] for r in a.shared.itertuples(index=False)]
    return parts + [_table(["pattern", "classes (share of their frames)", "frames", "exemplars"], rows)]


def _sequences_section(a: Analysis, colours) -> list:
    rows = [[f"class {r[0]}", r.instances,  # r[0]: the "class" column (a keyword, renamed by itertuples)
             " &rarr; ".join(_chip(k, colours) for k in r.typical), _pct(r.exact_share), f"{r.similarity:.2f}",
             f"{r.mean_length:.1f}"] for r in a.sequences.itertuples(index=False)]
    return ["<h2>Typical sequences (intra-action)</h2>",
            '<p class="note">Per class the medoid sequence of patterns (edit distance) over its instances; '
            'consistency: share of instances with exactly that sequence, and mean similarity to it '
            '(1 - edit distance / longer length).</p>',
            _table(["class", "instances", "typical sequence", "exactly", "similarity", "mean length"], rows)]


def _exemplars_section(a: Analysis, colours, exemplars: _Exemplars) -> list:
    used = a.usage.sum(axis=0)
    order = [int(p) for p in used.sort_values(ascending=False, kind="stable").index if used[p] > 0]
    rows = [[_chip(p, colours), int(used[p]), exemplars.cells(p)] for p in order]
    return ["<h2>Exemplars per pattern</h2>",
            '<p class="note">Frames with the highest response to each pattern, at most one per instance '
            '(hover for instance and time).</p>',
            _table(["pattern", "frames", "top frames"], rows)]


def _discriminative_section(a: Analysis, colours) -> list:
    if not len(a.discriminative):
        return []
    rows = [[f"class {r[0]}", r.instances, _pct(r.instance_accuracy), f"{r.best_position} ({r.position_segments})",
             _pct(r.position_accuracy), f"{_chip(r.best_pattern, colours)} ({r.pattern_segments})",
             _pct(r.pattern_accuracy)] for r in a.discriminative.itertuples(index=False)]
    return ["<h2>Discriminative sub-actions</h2>",
            f'<p class="note">Each annotated sub-action classified alone by {html.escape(a.classifier)}. '
            'Per class: the position and the pattern whose segments are classified right most often.</p>',
            _table(["class", "instances", "whole instance", "best position (segments)", "accuracy",
                    "best pattern (segments)", "accuracy"], rows),
            '<img class="fig" src="img/discriminative.png" alt="accuracy per sub-action position">']


def _recovery_section(a: Analysis, colours) -> list:
    if not a.recovery:
        return []
    r = a.recovery
    rows = [[d["prototype"], ", ".join(map(str, d["classes"])),
             _chip(d["pattern"], colours) if d["pattern"] is not None else "", ", ".join(map(str, d["agreeing"])),
             "yes" if d["recovered"] else "no", ", ".join(map(str, d["also_for_prototypes"]))] for d in r["details"]]
    return ["<h2>Planted shared sub-actions (synthetic truth)</h2>",
            f"<p>{r['recovered']} of {r['planted']} planted shared sub-actions come out as one shared "
            f"pattern; {r['specific']} of them with a pattern no other sub-action of those classes gets. "
            f"NMI between planted sub-action and pattern: {r['nmi']:.3f}.</p>",
            _table(["planted", "classes", "pattern", "agreeing classes", "recovered", "pattern also for"], rows)]
