"""Ground-truth boundaries round-tripped through a cache: how exact is the clock? (issue #12)

30 fps clips with known sub-action boundaries are decoded as ``tapos-extract`` decodes them
(``--stride 1, 3, 8`` and ``--fps 4``), the rows' timestamps are written to a real cache, the
annotated boundaries become training targets (``FeatureDataset.row_boundaries``) and a perfect
parser returns exactly those rows. Its boundaries go back to annotation frames by the clock's
rule (halfway between the rows either side, ``tapos.data.clock``) and, for comparison, by the
rule before it (row r's own frame, rounded). Printed per sampling: the mean signed error in
frames (prediction minus truth), the mean absolute error, and the TAPOS F1 at an absolute
threshold of 5 frames. Target: |mean error| < 0.5 frame and F1@5 >= 0.99 at every sampling.

    python benchmarks/time_alignment.py [--clips 24] [--out benchmarks/results]

Writes ``time_alignment.md`` and ``time_alignment.csv``.
"""
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import harness
from tapos.data import FeatureDataset, FeatureWriter, load_annotations, save_annotations
from tapos.data.annotations import Instance
from tapos.data.clock import row_boundary_frames
from tapos.data.machinery.ffmpeg import encode_video
from tapos.evaluate.protocols import evaluate_tapos
from tapos.extract.decode import Clip, Sampling, read_clip

RATE = 30
# A sub-action shorter than one row spacing cannot be told from its neighbours by any parser;
# TAPOS sub-actions are far longer. Boundaries here are at least this many frames apart.
MIN_GAP = 16
SAMPLINGS = {"stride 1": Sampling(), "stride 3": Sampling(stride=3), "stride 8": Sampling(stride=8),
             "fps 4": Sampling(fps=4)}


def old_rule(rows, frames):
    """The rule before the clock: a boundary at row r is row r's own frame, rounded."""
    rows = np.asarray(rows, dtype=np.int64)
    rows = rows[(rows > 0) & (rows < len(frames))]
    out = np.unique(np.round(np.asarray(frames)[rows]).astype(np.int64))
    return out[out > 0].astype(np.float64)


def make_clips(root: Path, n: int, seed: int = 0):
    """``n`` 30 fps clips of 6-10 s (noise, 64x64), 2-5 boundaries each (at least ``MIN_GAP``
    frames apart), and their annotations."""
    rng = np.random.default_rng(seed)
    instances = []
    for i in range(n):
        total = int(rng.integers(180, 301))
        while True:  # sub-actions of at least MIN_GAP frames: two rows at the coarsest sampling
            bounds = np.sort(rng.choice(np.arange(10, total - 10), size=int(rng.integers(2, 6)), replace=False))
            if np.diff(np.concatenate([[0], bounds, [total]])).min() >= MIN_GAP:
                break
        key_id = f"clip{i:04d}_ab"
        inst = Instance(key_id, f"s00000_0_000_{total // RATE}_{round(1000 * (total % RATE) / RATE):03d}", 0,
                        "val", total, (0, *map(int, bounds), total), (0.0, total / RATE))
        frames = (rng.random((total, 64, 64, 3)) * 255).astype(np.uint8)
        encode_video(frames, root / "videos" / f"{inst.key}.mp4", RATE, crf=30)
        instances.append(inst)
    save_annotations(instances, root / "ann.json")
    return instances


def round_trip(root: Path, instances, name: str, sampling: Sampling) -> dict:
    cache = root / f"{name.replace(' ', '_')}.h5"
    with FeatureWriter(cache, modalities=("rgb",)) as writer:
        for inst in instances:
            chunk, meta = read_clip(Clip(inst.key, root / "videos" / f"{inst.key}.mp4"), ("rgb",), sampling)
            writer.write(inst.key, {"rgb": np.zeros((len(chunk.frame_index), 4), np.float32)}, meta.fps,
                         meta.num_frames, chunk.frame_index, timestamps=meta.timestamps(chunk.frame_index),
                         frame_rate=meta.rate)
    ann = load_annotations(root / "ann.json")
    ds = FeatureDataset(cache, ann, "val")
    out = {}
    for rule, fn in (("before (row's own frame)", old_rule), ("clock (midpoint)", row_boundary_frames)):
        preds, errors = {}, []
        for i in range(len(ds)):
            item = ds[i]
            frames = item["frames"].numpy()
            pred = fn(item["row_boundaries"].numpy(), frames)
            preds[item["key"]] = pred
            gt = np.asarray(ann[item["key"]].boundaries, dtype=np.float64)
            errors.extend(pred[np.argmin(np.abs(pred[:, None] - gt[None]), axis=0)] - gt if len(pred) else [])
        res = evaluate_tapos(ann.split("val"), preds, absolute=(5,))
        errors = np.asarray(errors)
        out[rule] = {"mean error (frames)": float(errors.mean()), "mean abs error": float(np.abs(errors).mean()),
                     "F1@5 frames": float(res.absolute.f1[0])}
    return out


def main():
    ap = harness.arguments(__file__, __doc__)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = harness.parse(ap)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        instances = make_clips(root, args.clips, args.seed)
        for name, sampling in SAMPLINGS.items():
            for rule, scores in round_trip(root, instances, name, sampling).items():
                rows.append({"sampling": name, "rule": rule, **scores})
    df = pd.DataFrame(rows)
    table = df.to_markdown(index=False, floatfmt=".3f")
    print(table)
    n_bounds = sum(len(i.boundaries) for i in instances)
    harness.write_report(args, "time_alignment.md",
                         f"{args.clips} clips at {RATE} fps ({n_bounds} boundaries, sub-actions of at least {MIN_GAP} "
                         "frames), decoded as tapos-extract decodes them, a perfect parser's rows mapped back to "
                         f"annotation frames.\n\n{table}")
    harness.write_csv(args, "time_alignment.csv", df)


if __name__ == "__main__":
    main()
