"""Extraction throughput: model only, decoding only and the full pipeline, in one run on one video set.

Rows of the table (frames/s, one run, same videos and batch size):

* model only: the BNInception forward on random uint8 224x224 batches (rgb; flow: 10 channels),
  plain eager (no BN folding, NCHW) and as the pipeline runs it (BN folded, channels_last);
  on CUDA also fp16 and bf16 autocast. Median of ``--repeats`` timed batches after warm-up.
* decode only: ``ClipReader`` over every video (probe, ffmpeg decode, resize/crop, flow fields),
  once with one reader and once with the pipeline's number of decoder threads.
* host only: the full pipeline with the network replaced by one that returns zeros at once:
  what decoding, batching and writing alone sustain with the pipeline's decoders, i.e. the most
  frames/s any GPU can be fed on this machine. Its CPU ms/frame over the cores gives the
  ceiling for a machine with more of them.
* full pipeline: ``tapos.extract.extract(...)`` end to end (cache written), and the same minus
  the backbone construction (timed separately), frames = ``report.rows``.

CPU ms/frame: CPU time of this process and its ffmpeg children per frame (user + system), a cost
that other load on the machine disturbs less than frames/s does.

The pipeline/model ratio divides the pipeline's frames/s (construction subtracted) by the
model-only frames/s of the folded model at the pipeline's precision (rgb+flow: 1/(1/r_rgb + 1/r_flow)).
Targets: ratio >= 0.9 on CPU (decoding hidden behind the model); >= 2000 RGB frames/s model-only
on an H200 with fp16/bf16. Ratios are measured in one run; absolute numbers depend on the machine.

The default video set (12 synthetic videos of 456x256, "256p", 3-8 s) is generated once into
/tmp/tapos_extract_bench.

    python benchmarks/extract_throughput.py                           # CPU, rgb, ~2-5 min on 2 cores
    python benchmarks/extract_throughput.py --modality rgb,flow --flow dis
    python benchmarks/extract_throughput.py --device cuda             # + fp16/bf16 rows, batch 128
    python benchmarks/extract_throughput.py --instances 3 --repeats 2 # a quick check
    python benchmarks/extract_throughput.py --videos my_videos/ --batch-size 64 --threads 8

Writes ``extract_throughput_<modalities>_<device>{tag}.md`` (e.g. ``extract_throughput_rgb_cpu.md``).
"""
import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import harness
from tapos.extract.inputs import CROP

BENCH_ROOT = Path("/tmp/tapos_extract_bench")
CPU_RATIO_TARGET = 0.9
GPU_RGB_TARGET = 2000.0


def parse_size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w % 2 or h % 2 or w < 32 or h < 32:
        raise argparse.ArgumentTypeError("width and height must be even and >= 32 (H.264)")
    return w, h


def synthetic_videos(instances: int, size) -> Path:
    """The synthetic video set, generated once per (instances, size) below BENCH_ROOT."""
    w, h = size
    root = harness.synthetic(BENCH_ROOT / f"n{instances}_{w}x{h}", n_instances=instances, n_classes=4, seed=0,
                             videos=True, video_size=[w, h])
    return root / "videos"


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its finished children (the ffmpeg decoders)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Timer:
    """perf_counter that synchronises CUDA before reading the clock."""

    def __init__(self, device):
        import torch

        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"

    def now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
        return time.perf_counter()


def model_rate(modality, device, precision, fold, channels_last, batch_size, warmup, repeats, timer, seed=0):
    """(frames/s, CPU s/frame) of Backbone(...)(batch) on random uint8 input: median of ``repeats``
    timed batches; CPU time over all of them."""
    from tapos.extract.backbone import Backbone
    from tapos.extract.bninception import IN_CHANNELS

    net = Backbone(modality, weights="random", device=device, precision=precision, fold=fold,
                   channels_last=channels_last, progress=False)
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, 256, size=(batch_size, CROP, CROP, IN_CHANNELS[modality]), dtype=np.uint8)
    for _ in range(max(1, warmup)):
        net(batch)
    times = []
    c0 = cpu_seconds()
    for _ in range(max(1, repeats)):
        t0 = timer.now()
        net(batch)
        times.append(timer.now() - t0)
    cpu = (cpu_seconds() - c0) / (batch_size * len(times))
    del net
    return batch_size / statistics.median(times), cpu


def construction_seconds(modalities, device, precision, timer) -> float:
    """Seconds to build the pipeline's backbones (random weights, folded), as ``extract`` does."""
    from tapos.extract.backbone import Backbone

    t0 = timer.now()
    nets = [Backbone(m, weights="random", device=device, precision=precision, progress=False) for m in modalities]
    seconds = timer.now() - t0
    del nets
    return seconds


def probe_all(clips):
    """Seconds to probe every video (the pipeline does it once per video; cache cleared first)."""
    from tapos.extract.decode import cached_probe

    cached_probe.cache_clear()
    t0 = time.perf_counter()
    for clip in clips:
        cached_probe(Path(clip.path))
    return time.perf_counter() - t0


def decode_all(clips, modalities, flow, readers: int):
    """(frames, seconds, CPU seconds) to iterate ClipReader over ``clips`` with ``readers`` threads, no model."""
    from tapos.extract.decode import ClipReader, Sampling, cached_probe

    flow_threads = os.cpu_count() or 1  # as the pipeline (flow_threads=None)

    def run(part):
        n = 0
        for clip in part:
            for chunk in ClipReader(clip, modalities, Sampling(), flow, flow_threads):
                n += len(chunk.frame_index)
        return n

    cached_probe.cache_clear()  # the pipeline probes each video once; count it here too
    c0, t0 = cpu_seconds(), time.perf_counter()
    if readers <= 1:
        frames = run(clips)
    else:
        with ThreadPoolExecutor(max_workers=readers) as pool:
            frames = sum(pool.map(run, [clips[k::readers] for k in range(readers)]))
    return frames, time.perf_counter() - t0, cpu_seconds() - c0


def pipeline(videos, modalities, flow, batch_size, device, precision, decoders, timer):
    """(report, seconds, CPU seconds) of one end-to-end ``extract`` into a temporary cache."""
    from tapos.extract import extract
    from tapos.extract.decode import cached_probe

    cached_probe.cache_clear()
    with tempfile.TemporaryDirectory(prefix="tapos_extract_bench_") as tmp:
        c0, t0 = cpu_seconds(), timer.now()
        report = extract(videos, Path(tmp) / "feats.h5", weights="random", modalities=modalities, flow=flow,
                         batch_size=batch_size, device=device, precision=precision, decoders=decoders,
                         progress=False, overwrite=True)
        seconds, cpu = timer.now() - t0, cpu_seconds() - c0
    return report, seconds, cpu


class NullBackbone:
    """Stands in for the network in the host-only row: zeros, no compute."""

    def __init__(self, modality):
        self.description = f"null ({modality})"

    def submit(self, batch):
        from tapos.extract.backbone import FEATURE_DIM, Pending

        return Pending(np.zeros((len(batch), FEATURE_DIM), np.float32))


def host_only(videos, modalities, flow, batch_size, decoders):
    """(report, seconds, CPU seconds) of ``extract`` with NullBackbone: the host side alone."""
    from unittest import mock

    with mock.patch("tapos.extract.pipeline.build_backbones",
                    lambda opts, device: {m: NullBackbone(m) for m in opts["modalities"]}):
        return pipeline(videos, modalities, flow, batch_size, "cpu", "fp32", decoders, Timer("cpu"))


def combined(rates):
    """Frames/s when every frame goes through each model in turn."""
    return 1.0 / sum(1.0 / r for r in rates)


def table(rows) -> str:
    """``rows`` (dicts) as a markdown table."""
    import pandas as pd

    return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".1f")


def main():
    ap = harness.arguments(__file__, __doc__, tag=True)
    ap.add_argument("--videos", help="folder of videos (default: a synthetic set generated once into "
                                     f"{BENCH_ROOT})")
    ap.add_argument("--instances", type=int, default=12, help="videos of the synthetic set (default 12)")
    ap.add_argument("--video-size", type=parse_size, default=(456, 256), metavar="WxH",
                    help="frame size of the synthetic set (default 456x256, '256p')")
    ap.add_argument("--modality", default="rgb", help="rgb (default), flow or rgb,flow")
    ap.add_argument("--flow", default="dis", help="flow method when flow is extracted: dis (default), "
                                                  "farneback or tvl1 (very slow on CPU)")
    ap.add_argument("--batch-size", type=int, help="frames per forward (default 32 on CPU, 128 on CUDA)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    ap.add_argument("--precision", choices=["fp32", "fp16", "bf16"],
                    help="precision of the pipeline run (default fp32 on CPU, fp16 on CUDA)")
    ap.add_argument("--decoders", type=int, help="decoder threads of the pipeline (default: the pipeline's)")
    ap.add_argument("--repeats", type=int, default=5, help="timed batches per model row (median; default 5)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed batches first (default 1 CPU, 5 CUDA)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: all cores)")
    args = harness.parse(ap)

    import torch

    from tapos.data.features import parse_modality
    from tapos.extract import clips_from_folder
    from tapos.extract.pipeline import decoder_count

    modalities = parse_modality(args.modality)
    cuda = torch.device(args.device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: CUDA is not available (run without --device for the CPU table)")
    if not cuda and args.precision not in (None, "fp32"):
        sys.exit("--precision fp16/bf16 needs --device cuda")
    precision = args.precision or ("fp16" if cuda else "fp32")
    batch_size = args.batch_size or (128 if cuda else 32)
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    decoders = decoder_count(args.decoders, args.device)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    timer = Timer(args.device)

    videos = Path(args.videos) if args.videos else synthetic_videos(args.instances, args.video_size)
    clips = clips_from_folder(videos)
    if cuda:
        name = torch.cuda.get_device_name(torch.device(args.device))
    else:
        name = f"CPU, {threads} torch threads of {os.cpu_count()} cores"
    setting = (f"device: {name}; torch {torch.__version__}; batch {batch_size}; modalities {'+'.join(modalities)}"
               + (f" (flow: {args.flow})" if "flow" in modalities else "") + f"; {len(clips)} videos in {videos}")
    print(setting, flush=True)

    rows = []

    def add(stage, modality, variant, frames_per_s, cpu=None, note=""):
        cpu_ms = "" if cpu is None else f"{cpu * 1e3:.1f}"
        rows.append({"stage": stage, "modality": modality, "variant": variant, "batch": batch_size,
                     "frames/s": float(frames_per_s), "CPU ms/frame": cpu_ms, "note": note})
        print(f"  {stage:<12} {modality:<9} {variant:<34} {frames_per_s:9.1f} frames/s "
              f"{cpu_ms:>7} CPU ms/frame  {note}", flush=True)

    # 1. model only (and 5. reduced precision on CUDA)
    folded, eager_rates, folded_cpu = {}, {}, {}
    for m in modalities:
        eager, cpu = model_rate(m, args.device, "fp32", False, False, batch_size, warmup, args.repeats, timer)
        eager_rates[m] = eager
        add("model only", m, "eager fp32 (no fold, NCHW)", eager, cpu)
        fast, cpu = model_rate(m, args.device, "fp32", True, True, batch_size, warmup, args.repeats, timer)
        add("model only", m, "folded + channels_last fp32", fast, cpu, f"{fast / eager:.2f}x eager")
        folded[(m, "fp32")], folded_cpu[(m, "fp32")] = fast, cpu
        if cuda:
            for prec in ("fp16", "bf16"):
                r, cpu = model_rate(m, args.device, prec, True, True, batch_size, warmup, args.repeats, timer)
                note = f"{r / fast:.2f}x fp32"
                if m == "rgb":
                    note += f"; target >= {GPU_RGB_TARGET:.0f}: " + ("PASS" if r >= GPU_RGB_TARGET else "below target")
                add("model only", m, f"folded + channels_last {prec}", r, cpu, note)
                folded[(m, prec)], folded_cpu[(m, prec)] = r, cpu
    if not cuda:
        print("  (CUDA rows skipped: --device cpu" + ("" if torch.cuda.is_available() else ", no GPU here") + ")")

    # 2. decode only
    c0 = cpu_seconds()
    probe_s = probe_all(clips)
    probe_cpu = cpu_seconds() - c0
    frames, dec1, cpu1 = decode_all(clips, modalities, args.flow, 1)
    if frames == 0:
        sys.exit(f"{videos}: no frames decoded")
    add("probe only", "-", f"{len(clips)} videos, {probe_s / len(clips) * 1e3:.0f} ms each", frames / probe_s,
        probe_cpu / frames, "part of decode only; frames / probe seconds")
    add("decode only", "+".join(modalities), "1 reader", frames / dec1, cpu1 / frames)
    frames_n, dec_n, cpu_n = decode_all(clips, modalities, args.flow, decoders)
    add("decode only", "+".join(modalities), f"{decoders} readers (as the pipeline)", frames_n / dec_n,
        cpu_n / frames_n)

    # 3. host only, then the full pipeline
    host_report, host_s, host_cpu = host_only(videos, modalities, args.flow, batch_size, decoders)
    host_rate, host_ms = host_report.rows / host_s, host_cpu / max(host_report.rows, 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    add("host only", "+".join(modalities), f"no network, {decoders} decoders", host_rate, host_ms,
        f"CPU-bound ceiling {cores / host_ms:.0f} frames/s on {cores} cores ({1 / host_ms:.0f} per core)")
    build_s = construction_seconds(modalities, args.device, precision, timer)
    report, total_s, pipe_cpu = pipeline(videos, modalities, args.flow, batch_size, args.device, precision,
                                         decoders, timer)
    if report.failed:
        print(f"pipeline failures: {report.failed}")
    if report.rows != frames:
        print(f"note: the pipeline extracted {report.rows} frames, decode-only read {frames}")
    net_s = max(total_s - build_s, 1e-9)
    add("pipeline", "+".join(modalities), f"end to end {precision} ({total_s:.1f} s)", report.rows / total_s,
        pipe_cpu / max(report.rows, 1), "incl. model construction")
    add("pipeline", "+".join(modalities), f"minus construction ({build_s:.1f} s)", report.rows / net_s,
        note="construction timed separately")

    # 4. pipeline / model
    model_only = combined([folded[(m, precision)] for m in modalities])
    ratio = report.rows / net_s / model_only
    if cuda:
        verdict = f"(CPU target {CPU_RATIO_TARGET}; on GPU decoding may bound it)"
    else:
        verdict = "PASS" if ratio >= CPU_RATIO_TARGET else "below target"
    add("model only", "+".join(modalities), f"folded {precision}, per frame of all", model_only,
        note=f"pipeline/model ratio {ratio:.2f}, target >= {CPU_RATIO_TARGET}: {verdict}")

    notes = ["folded + channels_last over eager (fp32): "
             + ", ".join(f"{m} {folded[(m, 'fp32')] / eager_rates[m]:.2f}x" for m in modalities),
             f"pipeline/model ratio: {ratio:.2f} (pipeline {report.rows / net_s:.1f} frames/s without the "
             f"{build_s:.1f} s model construction, model only {model_only:.1f} frames/s); "
             f"target >= {CPU_RATIO_TARGET} on CPU: {verdict}"]
    if not cuda:
        model_cpu = sum(folded_cpu[(m, precision)] for m in modalities)
        notes.append(f"CPU cost per frame: model {model_cpu * 1e3:.1f} ms + decode {cpu_n / frames_n * 1e3:.1f} ms "
                     f"(pipeline measured: {pipe_cpu / max(report.rows, 1) * 1e3:.1f} ms incl. construction); with "
                     f"every core busy the ratio cannot exceed about {model_cpu / (model_cpu + cpu_n / frames_n):.2f}")
    notes += [f"host only (no network): {host_rate:.1f} frames/s with {decoders} decoders, {host_ms * 1e3:.2f} CPU ms "
              f"per frame, so about {1 / host_ms:.0f} frames/s per core can be fed to a GPU",
              f"decode only: {frames / dec1:.1f} frames/s with 1 reader, {frames_n / dec_n:.1f} with {decoders}; "
              f"{report.rows} frames, {len(report.done)} videos extracted, {len(report.failed)} failed"]
    text = "\n".join([setting + ".", "", table(rows), "", *(f"- {n}" for n in notes)])
    print(f"\n{text}")
    device = torch.device(args.device).type
    harness.write_report(args, f"extract_throughput_{'_'.join(modalities)}_{device}{args.tag}.md", text)


if __name__ == "__main__":
    main()
