"""Disk a feature cache takes, per modality and dtype, computed from an annotation file.

    python benchmarks/cache_size.py ANNOTATIONS [ANNOTATIONS ...] [--stride 1 3] [--dim 1024] [--tag _tapos]
    python benchmarks/cache_size.py ../shared/tapos_gt/tapos_gt_train.pkl ../shared/tapos_gt/tapos_gt_val.pkl --stride 1 3 8

``tapos-extract --annotations`` writes one row per kept frame of each instance: the clip's grid
at the annotation's rate holds ``total_frames`` frames, ``--stride S`` keeps frames 0, S, 2S, ...,
so ``ceil(total_frames / S)`` rows. A row holds ``--dim`` values per modality (1024: BNInception's
pooled feature, ``tapos.extract.bninception.FEATURE_DIM``) in the stored dtype, and every row also
its ``frame_index`` (int64) and ``timestamps`` (float64), as the schema ``tapos-features/1``
(``tapos.data.features``) stores them. Each instance is one part file, linked from the index; that
per-instance overhead is measured here by writing a few real parts and an index with
``tapos.data.parts.PartStore``. Also printed: the hours of shot footage the instances lie in (what
``tapos-data fetch-videos`` must at least download; the size depends on the format served).

Writes ``cache_size{tag}.md``.
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
PROBE_ROWS = (7, 300, 1000)  # the parts written to measure the per-instance overhead


def part_overhead(modalities: tuple, dtype: str, dim: int) -> float:
    """Bytes per instance beyond its arrays: HDF5 headers of a part file and its index entry, measured
    on parts of ``PROBE_ROWS`` rows written as tapos-extract writes them."""
    settings = ExtractionSettings(backbone="bninception", weights={m: "measure" for m in modalities},
                                  modalities=modalities, dtype=dtype)
    with tempfile.TemporaryDirectory() as tmp:
        store = PartStore(Path(tmp) / "feats.h5")
        store.check_settings(settings, overwrite=False)
        for k, rows in enumerate(PROBE_ROWS):
            arrays = {m: np.zeros((rows, dim), dtype) for m in modalities}
            store.write(f"probe{k}", arrays, 30.0, rows, np.arange(rows), settings, timestamps=np.arange(rows) / 30.0,
                        frame_rate=30.0)
        store.write_index(settings)
        disk = sum(p.stat().st_size for p in Path(tmp).rglob("*.h5"))
    raw = sum(rows * (len(modalities) * dim * np.dtype(dtype).itemsize + ROW_EXTRA) for rows in PROBE_ROWS)
    return (disk - raw) / len(PROBE_ROWS)


def rows_per_split(instances, stride: int) -> dict:
    """{split: (instances, rows)} when every ``stride``-th frame is kept."""
    out = {}
    for inst in instances:
        n, rows = out.get(inst.subset, (0, 0))
        out[inst.subset] = (n + 1, rows + -(-inst.total_frames // stride))
    return out


def size_table(instances, strides, dim: int) -> pd.DataFrame:
    """GB per split for each stride, modality set and dtype."""
    overhead = {(mods, dt): part_overhead(mods, dt, dim) for mods in ((m,) for m in MODALITIES) for dt in DTYPES}
    overhead.update({(MODALITIES, dt): part_overhead(MODALITIES, dt, dim) for dt in DTYPES})
    rows = []
    for stride in strides:
        per_split = rows_per_split(instances, stride)
        for (mods, dt), extra in overhead.items():
            row_bytes = len(mods) * dim * np.dtype(dt).itemsize + ROW_EXTRA
            row = {"stride": stride, "modality": "+".join(mods), "dtype": dt}
            for split, (n, r) in sorted(per_split.items()):
                row[f"{split} (GB)"] = (r * row_bytes + n * extra) / 1e9
            row["total (GB)"] = sum(v for k, v in row.items() if k.endswith("(GB)"))
            rows.append(row)
    return pd.DataFrame(rows)


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
    text = "\n".join([
        f"# Feature cache size for {', '.join(f'`{p.name}`' for p in args.annotations)}", "",
        f"`tapos-extract --annotations` caches, {args.dim} values per row and modality, per split (GB = 1e9 "
        f"bytes): rows `ceil(total_frames / stride)` per instance, plus `frame_index` and `timestamps` per row "
        f"and the measured HDF5 overhead of one part file and index entry per instance.", "",
        footage(instances).to_markdown(disable_numparse=True, stralign="right"), "",
        sizes.to_markdown(index=False, floatfmt=".2f"), "",
    ])
    print(text)
    harness.write_report(args, f"cache_size{args.tag}.md", text)


if __name__ == "__main__":
    main()
