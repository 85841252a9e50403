"""Evaluation speed: 2,000 instances at 20 thresholds (the TAPOS protocol's 10 relative + 10 absolute),
and the GEBD protocol with 5 annotators per video; compared in the same run with a plain-loop
transcription of the protocol (one threshold at a time, column deletion as the challenge code).

    python benchmarks/evaluate_speed.py [--instances 2000] [--repeat 5] [--out benchmarks/results]

Writes ``evaluate_speed.md``.
"""
import os
import time

import numpy as np

import harness

from tapos.data.annotations import Instance
from tapos.data.gebd import GebdVideo
from tapos.evaluate import RELATIVE_THRESHOLDS, evaluate_gebd, evaluate_tapos


def make_data(n, rng):
    instances, frames, gebd, seconds = {}, {}, {}, {}
    for k in range(n):
        total = int(rng.integers(100, 600))
        nb = int(rng.integers(1, 9))
        sub = np.unique(rng.integers(1, total, size=nb))
        inst = Instance(f"vid{k:07d}xx"[:11], f"s{k:05d}_0_000_10_000", int(rng.integers(21)), "val", total,
                        (0, *sub.tolist(), total), (0.0, 12.0))
        instances[inst.key] = inst
        frames[inst.key] = np.sort(rng.integers(0, total, size=rng.integers(0, 12))).astype(float)
        anns = [np.sort(rng.uniform(0, 10, size=rng.integers(1, 9))) for _ in range(5)]
        gebd[inst.key] = GebdVideo(inst.key, 10.0, anns)
        seconds[inst.key] = np.sort(rng.uniform(0, 10, size=rng.integers(0, 12)))
    return instances, frames, gebd, seconds


def loop_reference(gebd, preds, thresholds):
    for thr in thresholds:
        for key, v in gebd.items():
            det = [p for p in preds.get(key, []) if 0 <= p <= v.duration]
            for ann in v.annotators:
                off = np.array([[abs(g - p) for p in det] for g in ann]).reshape(len(ann), len(det))
                for i in range(len(ann)):
                    if off.shape[1] == 0:
                        break
                    j = np.argmin(off[i])
                    if off[i, j] <= thr * v.duration:
                        off = np.delete(off, j, 1)


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = harness.arguments(__file__, __doc__)
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = harness.parse(ap)
    instances, frames, gebd, seconds = make_data(args.instances, np.random.default_rng(0))
    t_tapos = best_of(lambda: evaluate_tapos(instances, frames), args.repeat)
    t_gebd = best_of(lambda: evaluate_gebd(gebd, seconds), args.repeat)
    t_loop = best_of(lambda: loop_reference(gebd, seconds, RELATIVE_THRESHOLDS), 1)
    rows = [("tapos protocol, 1 annotator, 20 thresholds", t_tapos, ""),
            ("gebd protocol, 5 annotators, 10 thresholds", t_gebd, f"{t_loop / t_gebd:.1f}x"),
            ("plain-loop transcription, gebd, 10 thresholds", t_loop, "1.0x")]
    text = "\n".join([f"Evaluation speed on {os.cpu_count()} CPU cores: {args.instances} instances, best of "
                      f"{args.repeat} runs (the plain loop: one run). Target: the tapos protocol well under 1 s.", "",
                      "| case | seconds | speed-up over the loop |", "|---|---|---|",
                      *(f"| {case} | {sec:.3f} | {ratio} |" for case, sec, ratio in rows)])
    print(text)
    harness.write_report(args, "evaluate_speed.md", text)


if __name__ == "__main__":
    main()
