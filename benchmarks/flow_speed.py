"""TV-L1 flow at 340x256: OpenCV's DualTVL1 against tvl1-torch, speed and agreement, in one run (issue 17).

Frames (340x256 gray, as tapos-extract computes flow on them):

* texture: a smooth random texture moved by a known motion between consecutive frames (sub-pixel
  and larger translations, a rotation, a zoom), so both methods have an end-point error (EPE)
  against the truth;
* clips: consecutive frames of synthetic videos (``tapos-data synth --videos``, 456x256)
  decoded and scaled as the pipeline decodes them.

Speed (frame pairs/s; one run, same pairs): OpenCV DualTVL1 with one thread and with the
pipeline's pool of one thread per core, tvl1-torch on CPU (batch 1 and 8 on one thread, batch
1 with torch's threads on all cores), DIS (medium) and Farneback for reference; with
``--device cuda`` tvl1-torch at batch 1..64 in fp32 and compiled (``torch.compile``) at batch 64.
The ratio column divides by OpenCV's one-thread rate. Target on one H200: >= 200 pairs/s.

Agreement (defaults, the same parameters for both): mean EPE of tvl1-torch against OpenCV's
field, the share of uint8 flow-image pixels (clip +-20 -> 0..255) within 2 grey levels of
OpenCV's, EPE against the truth (texture), and the cosine similarity, row by row, of the flow
features that ``tapos-extract --modality flow`` gives with ``--flow tvl1`` and ``--flow tvl1-torch``
(seeded random BNInception weights, the same for both) on short cuts of the clips.

    python benchmarks/flow_speed.py                        # CPU, about 5 minutes on 2 cores
    python benchmarks/flow_speed.py --device cuda          # + the GPU rows (benchmarks/gpu_check.sh)
    python benchmarks/flow_speed.py --pairs 4 --feature-clips 1   # a quick check

Writes ``flow_speed.md`` and ``flow_speed.csv``; the clips are generated once into /tmp/tapos_flow_bench.
"""
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

import harness
from tapos.extract.flow import FlowComputer, quantize
from tapos.extract.inputs import FLOW_SIZE
from tapos.extract.tvl1 import TVL1, opencv_tvl1

W, H = FLOW_SIZE
GPU_TARGET = 200.0
CLIPS_ROOT = Path("/tmp/tapos_flow_bench")
MARGIN = 16  # border pixels left out of the EPE against the truth (motion from outside the frame)


def texture_frames(n: int, seed: int = 0):
    """``n`` frames of a moving smooth texture and the true fields ``(n - 1, H, W, 2)``: frame k+1
    is frame k moved by the k-th motion of a cycle (translations, rotation, zoom)."""
    rng = np.random.default_rng(seed)
    m = 48
    noise = rng.random((H + 2 * m, W + 2 * m)).astype(np.float32)
    canvas = sum(k * cv2.GaussianBlur(noise, (0, 0), s) for s, k in ((1.0, 1.0), (2.5, 2.0), (6.0, 3.0)))
    canvas = (canvas - canvas.min()) / (canvas.max() - canvas.min()) * 255
    r = 0.02
    cycle = [(np.eye(2), (0.6, -0.35)), (np.eye(2), (3.3, 2.4)),
             (np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]]), (0.0, 0.0)), (1.02 * np.eye(2), (0.0, 0.0))]
    c = np.array([(W - 1) / 2, (H - 1) / 2])
    p = np.stack(np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64)), -1)
    frames, truth = [], []
    to_canvas = np.eye(3)  # frame k's coordinates -> frame 0's (= the canvas's, less the margin)
    for k in range(n):
        q = p @ to_canvas[:2, :2].T + to_canvas[:2, 2] + m
        frames.append(cv2.remap(canvas, q[..., 0].astype(np.float32), q[..., 1].astype(np.float32), cv2.INTER_CUBIC))
        a, t = cycle[k % len(cycle)]
        motion = np.eye(3)
        motion[:2, :2], motion[:2, 2] = a, c + np.asarray(t) - a @ c  # p -> c + A (p - c) + t
        truth.append(p @ a.T + motion[:2, 2] - p)
        to_canvas = to_canvas @ np.linalg.inv(motion)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8), np.asarray(truth[:-1], np.float32)


def clip_videos(n: int) -> list:
    """Synthetic videos (generated once below CLIPS_ROOT)."""
    root = harness.synthetic(CLIPS_ROOT / f"n{n}", n_instances=n, n_classes=2, seed=0, videos=True,
                             video_size=[456, 256])
    return sorted((root / "videos").glob("*.mp4"))[:n]


def clip_frames(videos, per_clip: int, start: float = 0.5) -> np.ndarray:
    """``per_clip`` consecutive frames from ``start`` s into each video, decoded like tapos-extract's flow."""
    from tapos.data.machinery.ffmpeg import probe, read_frames

    out = []
    for v in videos:
        rate = probe(v).fps
        chunks = read_frames(v, W, H, "gray", [("scale", FLOW_SIZE, {"flags": "bilinear"})], start=start,
                             max_frames=per_clip, rate=rate)
        out.append(np.concatenate(list(chunks))[..., 0])
    return np.stack(out)


def pairs_of(frames):
    """(first frames, second frames) of every consecutive pair, per clip."""
    return (np.concatenate([f[:-1] for f in frames]), np.concatenate([f[1:] for f in frames]))


def timed(fn):
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def opencv_rows(sequences, cores: int):
    """Speed rows of the OpenCV methods, and DualTVL1's fields (one thread, in pair order)."""
    n = sum(len(s) - 1 for s in sequences)
    default = cv2.getNumThreads()
    cv2.setNumThreads(1)
    ocv = opencv_tvl1()
    fields, sec = timed(lambda: np.stack([ocv.calc(s[k], s[k + 1], None) for s in sequences
                                          for k in range(len(s) - 1)]))
    rows = [("opencv DualTVL1", "cpu", 1, 1, n, sec)]
    for name, label in (("dis", "opencv DIS (medium)"), ("farneback", "opencv Farneback")):
        ref = FlowComputer(name, threads=1, crop=None)
        _, sec = timed(lambda: [ref.fields(s) for s in sequences])
        rows.append((label, "cpu", 1, 1, n, sec))
    cv2.setNumThreads(default)
    pool = FlowComputer("tvl1", threads=cores, crop=None)  # the pipeline's way: one pair per thread
    _, sec = timed(lambda: [pool.fields(s) for s in sequences])
    pool.close()
    rows.insert(1, ("opencv DualTVL1", "cpu", 1, cores, n, sec))
    return rows, fields


def torch_rate(i0, i1, device, batch, threads=None, compile=False, repeats=1):
    """(seconds for every pair in batches of ``batch``, the fields) with tvl1-torch."""
    solver = TVL1(device=device, threads=threads, compile=compile)
    a = torch.from_numpy(i0).to(device)
    b = torch.from_numpy(i1).to(device)
    run = lambda: torch.cat([solver(a[k:k + batch], b[k:k + batch]) for k in range(0, len(a), batch)])  # noqa: E731
    if device != "cpu" or compile:
        timed(lambda: solver(a[:batch], b[:batch]))  # warm-up (and compilation)
    best, fields = None, None
    for _ in range(repeats):
        fields, sec = timed(run)
        best = sec if best is None else min(best, sec)
    return best, fields.permute(0, 2, 3, 1).cpu().numpy()


def agreement(ours, ocv, truth=None) -> dict:
    epe = np.sqrt(((ours - ocv) ** 2).sum(-1))
    levels = np.abs(quantize(ours).astype(int) - quantize(ocv).astype(int))
    out = {"mean EPE vs OpenCV (px)": float(epe.mean()),
           "uint8 pixels within 2 levels (%)": 100 * float((levels <= 2).mean())}
    if truth is not None:
        inner = (slice(None), slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
        err = lambda f: float(np.sqrt(((f - truth) ** 2).sum(-1))[inner].mean())  # noqa: E731
        out["EPE vs truth, OpenCV (px)"], out["EPE vs truth, tvl1-torch (px)"] = err(ocv), err(ours)
    return out


def feature_cosines(videos, seconds: float) -> dict:
    """Row-by-row cosine similarity of flow features extracted with tvl1 and tvl1-torch."""
    from tapos.data import FeatureReader
    from tapos.data.videos import Clip
    from tapos.extract import extract

    clips = [Clip(v.stem, v, start=0.5, duration=seconds) for v in videos]
    feats = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("tvl1", "tvl1-torch"):
            out = Path(tmp) / f"{method}.h5"
            extract(None, out, clips=clips, modalities=("flow",), flow=method, weights="random", progress=False,
                    flow_threads=1)
            reader = FeatureReader(out)
            feats[method] = {c.key: reader.read(c.key, "flow") for c in clips}
    cos = []
    for key, a in feats["tvl1"].items():
        b = feats["tvl1-torch"][key]
        cos.extend((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))
    return {"feature rows compared": float(len(cos)), "feature cosine, mean": float(np.mean(cos)),
            "feature cosine, min": float(np.min(cos))}


def main():
    ap = harness.arguments(__file__, __doc__)
    ap.add_argument("--pairs", type=int, default=8, help="pairs of each frame set (texture, clips)")
    ap.add_argument("--threaded-pairs", type=int, default=2, help="pairs for tvl1-torch on all cores")
    ap.add_argument("--feature-clips", type=int, default=2, help="clips whose flow features are compared")
    ap.add_argument("--feature-seconds", type=float, default=0.4, help="seconds cut from each of them")
    ap.add_argument("--compile-cpu", action="store_true", help="also tvl1-torch compiled on CPU (minutes to compile)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU rows as well")
    args = harness.parse(ap)
    cores = len(os.sched_getaffinity(0))
    tex, truth = texture_frames(args.pairs + 1)
    videos = clip_videos(2)
    sequences = [tex, *clip_frames(videos, args.pairs // 2 + 1)]
    i0, i1 = pairs_of(sequences)
    n_tex = len(tex) - 1

    speed, ocv = opencv_rows(sequences, cores)
    ours = None
    for batch in (1, 8):
        sec, fields = torch_rate(i0, i1, "cpu", batch, threads=1)
        speed.append(("tvl1-torch", "cpu", batch, 1, len(i0), sec))
        ours = fields if ours is None else ours
    if args.compile_cpu:
        sec, _ = torch_rate(i0, i1, "cpu", 1, threads=1, compile=True)
        speed.append(("tvl1-torch, torch.compile", "cpu", 1, 1, len(i0), sec))
    if cores > 1:  # torch's threads within each operation (few pairs: on a shared machine this can crawl)
        n = min(len(i0), args.threaded_pairs)
        sec, _ = torch_rate(i0[:n], i1[:n], "cpu", 1, threads=cores)
        speed.append(("tvl1-torch", "cpu", 1, cores, n, sec))
    if args.device.startswith("cuda"):
        many0, many1 = np.tile(i0, (max(1, 64 // len(i0) + 1), 1, 1)), np.tile(i1, (max(1, 64 // len(i1) + 1), 1, 1))
        for batch in (1, 2, 4, 8, 16, 32, 64):
            n = max(batch, 16)
            sec, _ = torch_rate(many0[:n], many1[:n], args.device, batch, repeats=2)
            speed.append(("tvl1-torch", args.device, batch, "-", n, sec))
        try:
            sec, _ = torch_rate(many0[:64], many1[:64], args.device, 64, compile=True, repeats=2)
            speed.append(("tvl1-torch, torch.compile", args.device, 64, "-", 64, sec))
        except Exception as exc:  # a compiler missing on the machine: say so, keep the other rows
            print(f"torch.compile failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        _, gpu_fields = torch_rate(i0, i1, args.device, 64)
    speed = pd.DataFrame(speed, columns=["method", "device", "batch", "threads", "pairs", "seconds"])
    speed["pairs/s"] = speed["pairs"] / speed["seconds"]
    speed["ratio to OpenCV 1 thread"] = speed["pairs/s"] / speed["pairs/s"].iloc[0]

    acc = {"texture": agreement(ours[:n_tex], ocv[:n_tex], truth), "clips": agreement(ours[n_tex:], ocv[n_tex:])}
    if args.device.startswith("cuda"):
        acc[f"all, {args.device} vs OpenCV"] = agreement(gpu_fields, ocv)
    acc["feature clips"] = feature_cosines(videos[:args.feature_clips], args.feature_seconds)
    acc = pd.DataFrame([{"frames": k, "measure": m, "value": v} for k, d in acc.items() for m, v in d.items()])

    tables = (speed.to_markdown(index=False, floatfmt=".3f") + "\n\n" + acc.to_markdown(index=False, floatfmt=".6f"))
    print(tables)
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "none (the GPU rows are unmeasured)"
    harness.write_report(args, "flow_speed.md",
                         f"On {cores} CPU cores (GPU: {gpu}), torch {torch.__version__}, OpenCV {cv2.__version__}: "
                         f"{len(i0)} frame pairs of {W}x{H} ({n_tex} of a moving texture with known motion, "
                         f"{len(i0) - n_tex} of synthetic clips), OpenCV DualTVL1's defaults for both TV-L1s. GPU "
                         f"target: >= {GPU_TARGET:.0f} pairs/s on one H200.\n\n{tables}")
    harness.write_csv(args, "flow_speed.csv", pd.concat([speed.assign(table="speed"), acc.assign(table="agreement")]))


if __name__ == "__main__":
    main()
