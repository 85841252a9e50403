"""Training throughput and peak memory of every method at TAPOS scale, on TAPOS's structure.

Generates (once) a synthetic cache the size of TAPOS and trains each method for one epoch (k-means:
one pass; label-free methods: their fit, the standardisation statistics) in its own process,
printing instances/s and the process's peak RSS, and writes the table to
``results/parse_scale.md``. Target: peak RSS <= 4 GB for every method.

The cache's structure: by default that of the real TAPOS train annotations (``--like``, default
``shared/tapos_gt/tapos_gt_train.pkl`` beside the repository when it exists: its 12,822 instances,
or ``--max-instances`` of them, with their frame counts, fps, boundaries and classes, the content
synthetic; ``tapos-data synth --like``): about 280 frames on average but up to 25,050 in one
instance and up to 54 sub-actions, the lengths and counts that decide memory. Without the file (or
with ``--no-like``) the generator's own structure: 16,000 instances of 9-13 s at 25-30 fps, about
300 rows each, all alike. A row per frame (stride 1, the hardest case); ``--stride S`` trains on
every S-th row, as from a cache extracted at stride S (boundaries placed by the clock's rule).
Per-instance memory grows with the feature width (``--dim`` per modality; rgb+flow is twice that).

With ``--predict``: parsing a TAPOS-sized val set (1,755 instances of about 300 rows, 2,048-d
float16; generated once in ``--data``, every instance in val) with each label-free method that
needs no training (its statistics come from 200 instances), in its own process: instances/s, the
minutes for the whole set and the peak RSS, written to ``results/parse_scale_predict.md``.
Targets (issue #15): tsm and kcpd under 2 minutes on 2 cores, memory bounded by one instance.

    python benchmarks/parse_scale.py [--data DIR] [--like tapos_gt_train.pkl] [--max-instances N] [--methods ...]
    python benchmarks/parse_scale.py --dim 128 --stride 3          # a smaller, faster run
    python benchmarks/parse_scale.py --no-like --instances 1600 --dim 256   # the generator's own structure
    python benchmarks/parse_scale.py --predict [--data /tmp/tapos_val_scale] [--methods tsm kcpd pa]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import harness

METHODS = ["transparser", "kmeans", "isba", "ctm", "tcn", "pa", "tsm", "kcpd", "embed", "prior"]
NO_EPOCHS = ("pa", "tsm", "kcpd", "prior")  # label-free or content-free: fit records statistics only
LIKE = Path(__file__).resolve().parents[2] / "shared" / "tapos_gt" / "tapos_gt_train.pkl"
BUDGET_GB = 4.0
PREDICT_METHODS = ["tsm", "kcpd", "pa"]
VAL_INSTANCES = 1755  # TAPOS's val split


def read_strided(dataset, stride: int):
    """``dataset`` (a ``FeatureDataset``) read at every ``stride``-th row, as from a cache extracted
    at that stride: the rows keep their frames and the boundaries are placed on them by the clock's
    rule (:func:`tapos.data.clock.boundary_rows`)."""
    if stride <= 1:
        return dataset
    import torch
    from tapos.data.clock import boundary_rows

    base = type(dataset)

    def getitem(self, idx):
        item = base.__getitem__(self, idx)
        frames = item["frames"][::stride].contiguous()
        item["features"], item["frames"] = item["features"][::stride].contiguous(), frames
        item["row_boundaries"] = torch.from_numpy(boundary_rows(item["boundaries"].numpy(), frames.numpy()))
        return item

    dataset.__class__ = type(f"Strided{base.__name__}", (base,), {"__getitem__": getitem})
    return dataset


def one(method: str, data: Path, max_train: int, stride: int = 1, longest: int = 0) -> dict:
    """Runs in a child process: one epoch of ``method``; prints a JSON line."""
    from tapos.data import FeatureDataset, load_annotations
    from tapos.parse import FitOptions, get_parser

    ann = load_annotations(data / "tapos_annotation.json")
    train = read_strided(FeatureDataset(data / "features.h5", ann, "train", "rgb+flow"), stride)
    if longest:  # the batches that decide the peak: only the longest instances
        train.instances = sorted(train.instances, key=lambda i: -i.total_frames)[:longest]
    if max_train and len(train) > max_train:
        train.instances = train.instances[:max_train]
    overrides = {"passes": 1} if method == "kmeans" else ({} if method in NO_EPOCHS else {"epochs": 1})
    if method == "isba":
        overrides["rounds"] = 0
    parser = get_parser(method, **overrides)
    t = time.time()
    parser.fit(train, None, FitOptions(progress=False))
    seconds = time.time() - t
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # Linux reports KiB
    return {"method": method, "instances": len(train), "seconds": seconds,
            "instances_per_s": len(train) / seconds, "peak_rss_gb": rss_gb}


def children(methods, *flags, failed=None):
    """Yield each method's JSON line from its own child process, run with this script's ``flags``
    (``{method}`` in a flag is the method); a failed child prints its error and is left out (with
    ``failed``, a list, its ``{"method", "error"}`` is appended there)."""
    for method in methods:
        cmd = [sys.executable, __file__, *(f.format(method=method) for f in flags)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{method}: failed\n{proc.stderr[-2000:]}")
            if failed is not None:
                last = (proc.stderr.strip().splitlines() or [""])[-1]
                why = "killed (out of memory?)" if proc.returncode < 0 else last[:120]
                failed.append({"method": method, "error": f"exit {proc.returncode}: {why}"})
            continue
        yield json.loads(proc.stdout.strip().splitlines()[-1])


def one_predict(method: str, data: Path) -> dict:
    """Runs in a child process: ``method``'s boundaries for every instance; prints a JSON line."""
    from tapos.data import FeatureDataset, load_annotations
    from tapos.parse import FitOptions, get_parser, predict_dataset

    ann = load_annotations(data / "tapos_annotation.json")
    every = FeatureDataset(data / "features.h5", ann, "val", "rgb+flow")
    stats = FeatureDataset(data / "features.h5", ann, "val", "rgb+flow")
    stats.instances = stats.instances[:200]  # standardisation statistics: a label-free method's only fit
    parser = get_parser(method)
    parser.fit(stats, None, FitOptions(progress=False))
    t = time.time()
    preds = predict_dataset(parser, every)
    seconds = time.time() - t
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    return {"method": method, "instances": len(preds), "seconds": seconds, "instances_per_s": len(preds) / seconds,
            "peak_rss_gb": rss_gb}


def predict_main(args) -> None:
    # every instance in val, TAPOS-like lengths
    data = harness.synthetic(args.data, n_instances=VAL_INSTANCES, n_classes=21, seed=0, features=True, dim=1024,
                             dtype="float16", fps_choices=[25, 30], duration_range=[9.0, 13.0], val_fraction=1.0)
    rows = []
    for r in children(args.methods or PREDICT_METHODS, "--data", str(data), "--one-predict", "{method}"):
        rows.append(r)
        print(f"{r['method']:<8} {r['instances']} inst  {r['instances_per_s']:.1f} inst/s  "
              f"{r['seconds'] / 60:.2f} min  peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
    text = [f"Parsing {rows[0]['instances'] if rows else 0} val instances (about 300 rows, 2,048-d float16) on "
            f"{os.cpu_count()} CPU cores, each method in its own process (HDF5 reads included):", "",
            "| method | instances/s | whole set (min) | peak RSS (GB) |", "|---|---|---|---|"]
    text += [f"| {r['method']} | {r['instances_per_s']:.1f} | {r['seconds'] / 60:.2f} | {r['peak_rss_gb']:.2f} |"
             for r in rows]
    harness.write_report(args, "parse_scale_predict.md", "\n".join(text))
    print("\n".join(text))


def structure(data: Path) -> dict:
    """What the train split of ``data`` looks like: instances, rows (frames), the longest instance
    and the most sub-actions."""
    from tapos.data import load_annotations

    train = [i for i in load_annotations(data / "tapos_annotation.json").values() if i.subset == "train"]
    frames = [i.total_frames for i in train]
    return {"instances": len(train), "frames": sum(frames), "longest": max(frames),
            "most_subactions": max(i.num_subactions for i in train)}


def make_data(args, data: Path) -> Path:
    """``data``, generated unless it exists; one made with other settings is refused."""
    common = dict(seed=0, features=True, dim=args.dim, dtype="float16")
    if args.like:
        return harness.synthetic(data, like=[args.like], max_instances=args.max_instances, **common)
    # TAPOS-like lengths: 9-13 s at 25-30 fps, about 300 frames per instance
    return harness.synthetic(data, n_instances=args.instances, n_classes=21, fps_choices=[25, 30],
                             duration_range=[9.0, 13.0], **common)


def train_table(args, data: Path, rows: list, failed: list) -> str:
    st = structure(data)
    size = (data / "features.h5").stat().st_size / 1024 ** 3
    where = (f"the structure of `{Path(args.like).name}` ({'all' if not args.max_instances else 'at most'} "
             f"{st['instances']:,} train instances{'' if not args.max_instances else ' of the file, drawn with seed 0'})"
             if args.like else f"the generator's own structure ({st['instances']:,} train instances of 9-13 s)")
    rows_note = (f"a row every {args.stride} frames (a stride-{args.stride} cache)" if args.stride > 1
                 else "a row per frame (stride 1)")
    used = min(st["instances"], args.max_train or st["instances"], args.longest or st["instances"])
    subset = (f"; the {used:,} longest train instances" if args.longest else
              f"; the first {used:,} train instances" if used < st["instances"] else "")
    text = [f"One epoch of each method (k-means: one pass; {', '.join(NO_EPOCHS)}: fit records the standardisation "
            f"statistics only) in its own process on {os.cpu_count()} CPU cores, over synthetic features laid on "
            f"{where}: {st['frames']:,} frames, the longest instance {st['longest']:,} frames, at most "
            f"{st['most_subactions']} sub-actions; {rows_note}; {args.dim * 2}-d float16 (rgb + flow, {args.dim} "
            f"each; {size:.1f} GB on disk){subset}. "
            f"Peak RSS is the process's maximum resident set (HDF5 reads included); per-instance memory grows with "
            f"the feature width. Budget: {BUDGET_GB:g} GB.", "",
            "| method | train instances | instances/s (1 epoch) | peak RSS (GB) |", "|---|---|---|---|"]
    for r in rows:
        rate = "no training" if r["method"] in NO_EPOCHS else f"{r['instances_per_s']:.2f}"
        flag = " (over budget)" if r["peak_rss_gb"] > BUDGET_GB else ""
        text.append(f"| {r['method']} | {r['instances']} | {rate} | {r['peak_rss_gb']:.2f}{flag} |")
    text += [f"| {f['method']} | failed: {f['error']} | | |" for f in failed]
    return "\n".join(text) + "\n"


def main():
    ap = harness.arguments(__file__, __doc__, data=None, tag=True,
                           data_help="the cache (default: /tmp/tapos_scale_like with --like, /tmp/tapos_scale "
                                     "without, /tmp/tapos_val_scale with --predict)")
    ap.add_argument("--like", default=str(LIKE) if LIKE.is_file() else None, metavar="ANNOTATIONS",
                    help=f"lay the cache over this annotation file's structure (default: {LIKE} when it exists)")
    ap.add_argument("--no-like", dest="like", action="store_const", const=None,
                    help="the generator's own structure instead")
    ap.add_argument("--max-instances", type=int, default=None, help="with --like: at most N of the file's instances")
    ap.add_argument("--instances", type=int, default=16000, help="without --like: instances generated (80%% train)")
    ap.add_argument("--dim", type=int, default=1024, help="feature width per modality")
    ap.add_argument("--stride", type=int, default=1, help="train on every S-th row (a stride-S cache)")
    ap.add_argument("--max-train", type=int, default=0, help="train on at most this many instances (0: all)")
    ap.add_argument("--longest", type=int, default=0, help="train on the N longest train instances only (a stress "
                    "test of the batches that decide peak memory)")
    ap.add_argument("--methods", nargs="+", default=None, help=f"default: {' '.join(METHODS)} "
                    f"(with --predict: {' '.join(PREDICT_METHODS)})")
    ap.add_argument("--predict", action="store_true", help="label-free parsing speed on a TAPOS-sized val set")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--one-predict", help=argparse.SUPPRESS)
    args = harness.parse(ap)
    if args.predict:
        args.data = args.data or "/tmp/tapos_val_scale"
    data = Path(args.data or ("/tmp/tapos_scale_like" if args.like else "/tmp/tapos_scale"))
    args.data = str(data)
    if args.one_predict:
        print(json.dumps(one_predict(args.one_predict, data)))
        return
    if args.predict:
        predict_main(args)
        return
    args.methods = args.methods or METHODS
    if args.one:
        print(json.dumps(one(args.one, data, args.max_train, args.stride, args.longest)))
        return
    if args.like is None:
        print(f"note: {LIKE} not found (or --no-like): the generator's own structure, every instance about 300 "
              f"rows; pass --like ANNOTATIONS for TAPOS's lengths and sub-action counts")
    elif not Path(args.like).is_file():
        raise SystemExit(f"--like {args.like}: no such file")
    make_data(args, data)
    rows, failed = [], []
    for r in children(args.methods, "--data", str(data), "--one", "{method}", "--max-train", str(args.max_train),
                      "--stride", str(args.stride), "--longest", str(args.longest), failed=failed):
        rows.append(r)
        print(f"{r['method']:<12} {r['instances']:>6} inst  {r['instances_per_s']:8.2f} inst/s  "  # no-epoch methods: no training
              f"peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
    text = train_table(args, data, rows, failed)
    harness.write_report(args, f"parse_scale{args.tag}.md", text)
    print(text)


if __name__ == "__main__":
    main()
