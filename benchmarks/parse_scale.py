"""Training throughput and peak memory of every method at TAPOS scale.

Generates (once) a synthetic cache the size of TAPOS: about 13k train instances of about 300
frames, 2048-d float16 (1024 rgb + 1024 flow), roughly 16 GB; then trains each method for one
epoch (k-means: one pass) in its own process and prints instances/s and the process's peak RSS.
Target: peak RSS <= 4 GB for every method (training streams from the HDF5 cache).

With ``--predict``: parsing a TAPOS-sized val set (1,755 instances of about 300 rows, 2,048-d
float16; generated once in ``--data``, every instance in val) with each label-free method that
needs no training (its statistics come from 200 instances), in its own process: instances/s, the
minutes for the whole set and the peak RSS, written to ``results/parse_scale_predict.md``.
Targets (issue #15): tsm and kcpd under 2 minutes on 2 cores, memory bounded by one instance.

    python benchmarks/parse_scale.py [--data /tmp/tapos_scale] [--instances 16000] [--methods ...]
    python benchmarks/parse_scale.py --instances 1600 --dim 256      # a quick, smaller run
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

METHODS = ["transparser", "kmeans", "isba", "ctm", "tcn", "pa"]
PREDICT_METHODS = ["tsm", "kcpd", "pa"]
VAL_INSTANCES = 1755  # TAPOS's val split


def one(method: str, data: Path, max_train: int) -> dict:
    """Runs in a child process: one epoch of ``method``; prints a JSON line."""
    from tapos.data import FeatureDataset, load_annotations
    from tapos.parse import FitOptions, get_parser

    ann = load_annotations(data / "tapos_annotation.json")
    train = FeatureDataset(data / "features.h5", ann, "train", "rgb+flow")
    if max_train and len(train) > max_train:
        train.instances = train.instances[:max_train]
    overrides = {"passes": 1} if method == "kmeans" else ({} if method == "pa" else {"epochs": 1})
    if method == "isba":
        overrides["rounds"] = 0
    parser = get_parser(method, **overrides)
    t = time.time()
    parser.fit(train, None, FitOptions(progress=False))
    seconds = time.time() - t
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # Linux reports KiB
    return {"method": method, "instances": len(train), "seconds": seconds,
            "instances_per_s": len(train) / seconds, "peak_rss_gb": rss_gb}


def children(methods, *flags):
    """Yield each method's JSON line from its own child process, run with this script's ``flags``
    (``{method}`` in a flag is the method); a failed child prints its error and is left out."""
    for method in methods:
        cmd = [sys.executable, __file__, *(f.format(method=method) for f in flags)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{method}: failed\n{proc.stderr[-2000:]}")
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
    from seeds import header
    from tapos.data.io import atomic_write_text

    data = Path(args.data if args.data != "/tmp/tapos_scale" else "/tmp/tapos_val_scale")
    if not (data / "features.h5").exists():
        from tapos.data.synth import write_dataset

        t = time.time()
        write_dataset(data, n_instances=VAL_INSTANCES, n_classes=21, seed=0, features=True, dim=1024,
                      dtype="float16", fps_choices=[25, 30], duration_range=[9.0, 13.0], val_fraction=1.0,
                      progress=False)
        print(f"generated {data} in {time.time() - t:.0f} s")
    rows = []
    for r in children(args.methods or PREDICT_METHODS, "--data", str(data), "--one-predict", "{method}"):
        rows.append(r)
        print(f"{r['method']:<8} {r['instances']} inst  {r['instances_per_s']:.1f} inst/s  "
              f"{r['seconds'] / 60:.2f} min  peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
    text = [header("parse_scale.py"), "",
            f"Parsing {rows[0]['instances'] if rows else 0} val instances (about 300 rows, 2,048-d float16) on "
            f"{os.cpu_count()} CPU cores, each method in its own process (HDF5 reads included):", "",
            "| method | instances/s | whole set (min) | peak RSS (GB) |", "|---|---|---|---|"]
    text += [f"| {r['method']} | {r['instances_per_s']:.1f} | {r['seconds'] / 60:.2f} | {r['peak_rss_gb']:.2f} |"
             for r in rows]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "parse_scale_predict.md", "\n".join(text) + "\n")
    print("\n".join(text))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/tapos_scale")
    ap.add_argument("--instances", type=int, default=16000, help="instances generated (80%% train)")
    ap.add_argument("--dim", type=int, default=1024, help="feature width per modality")
    ap.add_argument("--max-train", type=int, default=0, help="train on at most this many instances (0: all)")
    ap.add_argument("--methods", nargs="+", default=None, help=f"default: {' '.join(METHODS)} "
                    f"(with --predict: {' '.join(PREDICT_METHODS)})")
    ap.add_argument("--predict", action="store_true", help="label-free parsing speed on a TAPOS-sized val set")
    ap.add_argument("--out", default="benchmarks/results", help="where --predict writes its table")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--one-predict", help=argparse.SUPPRESS)
    args = ap.parse_args()
    data = Path(args.data)
    if args.one_predict:
        print(json.dumps(one_predict(args.one_predict, data)))
        return
    if args.predict:
        predict_main(args)
        return
    args.methods = args.methods or METHODS
    if args.one:
        print(json.dumps(one(args.one, data, args.max_train)))
        return
    if not (data / "features.h5").exists():
        from tapos.data.synth import write_dataset

        t = time.time()
        # TAPOS-like lengths: 9-13 s at 25-30 fps, about 300 frames per instance
        write_dataset(data, n_instances=args.instances, n_classes=21, seed=0, features=True, dim=args.dim,
                      dtype="float16", fps_choices=[25, 30], duration_range=[9.0, 13.0], progress=False)
        print(f"generated {data} in {time.time() - t:.0f} s")
    size = (data / "features.h5").stat().st_size / 1024 ** 3
    rows = []
    for r in children(args.methods, "--data", str(data), "--one", "{method}", "--max-train", str(args.max_train)):
        rows.append(r)
        print(f"{r['method']:<12} {r['instances']:>6} inst  {r['instances_per_s']:8.1f} inst/s  "  # pa: no training
              f"peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
    print(f"\ncache: {size:.1f} GB on disk ({args.dim * 2}-d float16)")
    print("| method | train instances | instances/s (1 epoch) | peak RSS (GB) |")
    print("|---|---|---|---|")
    for r in rows:
        rate = "no training" if r["method"] == "pa" else f"{r['instances_per_s']:.1f}"
        print(f"| {r['method']} | {r['instances']} | {rate} | {r['peak_rss_gb']:.2f} |")


if __name__ == "__main__":
    main()
