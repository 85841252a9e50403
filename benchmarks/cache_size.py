"""Disk a feature cache takes, per modality and dtype, computed from an annotation file.

    python benchmarks/cache_size.py ANNOTATIONS [ANNOTATIONS ...] [--stride 1 3] [--dim 1024] [--tag _tapos]
    python benchmarks/cache_size.py ../shared/tapos_gt/tapos_gt_train.pkl ../shared/tapos_gt/tapos_gt_val.pkl --stride 1 3 8

``tapos-extract --annotations`` writes one row per kept frame of each instance: the clip's grid
at the annotation's rate holds ``total_frames`` frames, ``--stride S`` keeps frames 0, S, 2S, ...,
so ``ceil(total_frames / S)`` rows. A row holds ``--dim`` values per modality (1024: BNInception's
pooled feature, ``tapos.extract.bninception.FEATURE_DIM``) in the stored dtype, and every row also
its ``frame_index`` (int64) and ``timestamps`` (float64), as the schema ``tapos-features/1``
(``tapos.data.features``) stores them. Each instance is one part file, linked from the index: a
part file's overhead is measured by writing a few real parts with ``tapos.data.parts.PartStore``,
the index by writing it (its links do not read the parts). Also printed: the hours of shot footage
the instances lie in (what ``tapos-data fetch-videos`` must at least download; the size depends on
the format served).

Writes ``cache_size{tag}.md`` (GB) and ``cache_size{tag}.csv`` (bytes).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import harness
from tapos.data import load_annotations
from tapos.data.features import DTYPES, MODALITIES, ExtractionSettings
from tapos.data.parts import PartStore
from tapos.extract.bninception import FEATURE_DIM

ROW_EXTRA = 8 + 8  # frame_index int64 + timestamps float64, per row
PROBES = (10, 50, 90)  # percentiles of the instances' rows: the parts written to measure the overhead


def settings_of(modalities: tuple, dtype: str) -> ExtractionSettings:
    return ExtractionSettings(backbone="bninception", weights={m: "bn_inception-52deb4733.pth" for m in modalities},
                              modalities=modalities, dtype=dtype)


def part_overhead(modalities: tuple, dtype: str, dim: int, probes: dict) -> float:
    """Bytes of a part file beyond its arrays (HDF5 headers, small arrays' packing), measured on the
    parts of ``probes`` ({key: rows}: real keys, whose length the headers hold) written as
    tapos-extract writes them."""
    settings = settings_of(modalities, dtype)
    row_bytes = len(modalities) * dim * np.dtype(dtype).itemsize + ROW_EXTRA
    with tempfile.TemporaryDirectory() as tmp:
        store = PartStore(Path(tmp) / "feats.h5")
        store.check_settings(settings, overwrite=False)
        extra = [store.write(key, {m: np.zeros((rows, dim), dtype) for m in modalities}, 30.0, rows,
                             np.arange(rows), settings, timestamps=np.arange(rows) / 30.0,
                             frame_rate=30.0).stat().st_size - rows * row_bytes for key, rows in probes.items()]
    return float(np.mean(extra))


def index_bytes(keys, modalities: tuple, dtype: str) -> int:
    """The size of the index tapos-extract writes for ``keys`` (its links do not read the parts, so
    empty files stand in for them)."""
    settings = settings_of(modalities, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        store = PartStore(Path(tmp) / "feats.h5")
        store.check_settings(settings, overwrite=False)
        for key in keys:
            store.part_path(key).touch()
        store.write_index(settings)
        return store.index.stat().st_size


def rows_of(instances, stride: int) -> np.ndarray:
    """Rows of each instance when every ``stride``-th frame is kept."""
    return np.array([-(-inst.total_frames // stride) for inst in instances])


def size_table(instances, strides, dim: int) -> pd.DataFrame:
    """Bytes per split for each stride, modality set and dtype: every instance's arrays and part file
    headers; the total adds the index (one for every split)."""
    splits = np.array([inst.subset for inst in instances])
    layouts = [(m, dt) for m in [(m,) for m in MODALITIES] + [MODALITIES] for dt in DTYPES]
    index = {layout: index_bytes([i.key for i in instances], *layout) for layout in layouts}
    table = []
    for stride in strides:
        rows = rows_of(instances, stride)
        order = np.argsort(rows, kind="stable")
        probes = {instances[i].key: int(rows[i]) for i in order[[round(p / 100 * (len(rows) - 1)) for p in PROBES]]}
        for mods, dt in layouts:
            size = rows * (len(mods) * dim * np.dtype(dt).itemsize + ROW_EXTRA) + part_overhead(mods, dt, dim, probes)
            row = {"stride": stride, "modality": "+".join(mods), "dtype": dt}
            row.update({split: round(size[splits == split].sum()) for split in sorted(set(splits))})
            row["total"] = round(size.sum()) + index[(mods, dt)]
            table.append(row)
    return pd.DataFrame(table)


def footage(instances) -> pd.DataFrame:
    """Per split: instances, source videos, rows at stride 1, and hours of instance and shot footage."""
    rows = []
    for split in sorted({i.subset for i in instances}):
        these = [i for i in instances if i.subset == split]
        shots = {(i.youtube_id, tuple(i.shot_timestamps)) for i in these}
        rows.append({"split": split, "instances": f"{len(these):,}",
                     "source videos": f"{len({i.youtube_id for i in these}):,}",
                     "frames (rows at stride 1)": f"{sum(i.total_frames for i in these):,}",
                     "instance footage (h)": f"{sum(i.duration for i in these) / 3600:.1f}",
                     "shot footage (h)": f"{sum(b - a for _, (a, b) in shots) / 3600:.1f}"})
    return pd.DataFrame(rows).set_index("split")


def main():
    ap = harness.arguments(__file__, __doc__, tag=True)
    ap.add_argument("annotations", nargs="+", type=Path, help="annotation files (TAPOS json or GEBD .pkl/.json)")
    ap.add_argument("--stride", type=int, nargs="+", default=[1], help="tapos-extract --stride values (default 1)")
    ap.add_argument("--dim", type=int, default=FEATURE_DIM, help=f"values per row and modality (default {FEATURE_DIM})")
    args = harness.parse(ap)
    instances = []
    for path in args.annotations:
        harness.existing(path.parent, path.name)
        instances += list(load_annotations(path).values())
    sizes = size_table(instances, args.stride, args.dim)
    in_gb = sizes.rename(columns={c: f"{c} (GB)" for c in sizes.columns[3:]})
    in_gb[in_gb.columns[3:]] = in_gb[in_gb.columns[3:]] / 1e9
    text = "\n".join([
        f"# Feature cache size for {', '.join(f'`{p.name}`' for p in args.annotations)}", "",
        f"`tapos-extract --annotations` caches, {args.dim} values per row and modality, per split (GB = 1e9 "
        f"bytes): rows `ceil(total_frames / stride)` per instance, plus `frame_index` and `timestamps` per row "
        f"and the measured HDF5 overhead of one part file and index entry per instance.", "",
        footage(instances).to_markdown(disable_numparse=True, stralign="right"), "",
        in_gb.to_markdown(index=False, floatfmt=".2f"), "",
    ])
    print(text)
    harness.write_report(args, f"cache_size{args.tag}.md", text)
    harness.write_csv(args, f"cache_size{args.tag}.csv", sizes)


if __name__ == "__main__":
    main()
