"""Shared fixtures: small real files written the way users' files look."""
import importlib.metadata
import json
import os
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

if os.environ.get("PYTEST_XDIST_WORKER"):
    # the suite runs in one worker per core (pytest -n auto): each worker and the commands it starts
    # compute on one thread, so two workers do not fight over two cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


def run_cli(*args, check=True, cwd=None, process=False):
    """Run a tapos command line (e.g. ``tapos-data stats x.json``) and return a CompletedProcess.

    By default in this process, through click's test runner calling the very ``main`` that the
    installed console script calls: a fresh process per call spent about 3 s starting Python and
    torch, minutes over the suite. An exception that escapes the command (a would-be traceback)
    is appended to ``stderr`` with exit status 1, so "no traceback" checks still see it.
    ``process=True`` runs the installed console script itself (entry points, exit codes)."""
    cmd = [str(BIN / args[0]), *map(str, args[1:])]
    if process:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    else:
        proc = _run_in_process(cmd, args[0], cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _run_in_process(cmd, script, cwd):
    from click.testing import CliRunner

    (entry,) = importlib.metadata.entry_points(group="console_scripts", name=script)
    before = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with warnings.catch_warnings():  # as PYTHONWARNINGS=ignore does for the console script
            warnings.simplefilter("ignore")
            result = CliRunner().invoke(entry.load(), cmd[1:], prog_name=script)
    finally:
        os.chdir(before)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return subprocess.CompletedProcess(cmd, result.exit_code, result.stdout, stderr)


# A few entries in the released layout. YouTube ids contain "_" and "-" on purpose.
RAW_ANNOTATIONS = {
    "yMK2zxDDs2A": {
        "s00004_0_100_7_931": {"action": 11, "substages": [0, 79, 195], "total_frames": 195,
                               "shot_timestamps": [43.36, 53.48], "subset": "train"},
        "s00006_2_500_6_500": {"action": 3, "substages": [0, 20, 50, 100], "total_frames": 100,
                               "shot_timestamps": [60.0, 70.2], "subset": "train"},
    },
    "a_b-c_d-e_f": {
        "s00012_1_000_11_000": {"action": 11, "substages": [0, 60, 120, 200, 300], "total_frames": 300,
                                "shot_timestamps": [5.5, 20.0], "subset": "val"},
    },
    "Zz-_09aB_cD": {
        "s00001_0_000_4_000": {"action": 3, "substages": [0, 50, 120], "total_frames": 120,
                               "shot_timestamps": [0.0, 4.5], "subset": "val"},
    },
}


@pytest.fixture(scope="session")
def cli():
    """``cli("tapos-data", "stats", path, check=False)``: run a tapos command line (see ``run_cli``)."""
    return run_cli


@pytest.fixture
def raw_annotations():
    return json.loads(json.dumps(RAW_ANNOTATIONS))


@pytest.fixture
def annotation_file(tmp_path, raw_annotations):
    path = tmp_path / "tapos_annotation.json"
    path.write_text(json.dumps(raw_annotations))
    return path


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A small synthetic dataset with features (shared, read-only for tests)."""
    from tapos.data.synth import write_dataset

    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, n_instances=60, n_classes=5, seed=3, features=True, progress=False)
    return out


def numbered_frames(n, width=96, height=64):
    """Gray frames whose brightness encodes their number (``frame_value``; gray survives 4:2:0
    chroma subsampling exactly), with a white bar on the left quarter to check orientation."""
    import numpy as np

    for t in range(n):
        img = np.full((height, width, 3), frame_value(t), np.uint8)
        img[:, : max(1, width // 4)] = 255
        yield img


def frame_value(t):
    return 16 + (t * 3) % 222  # unique for 74 frames, 3 levels apart


def frame_number(value, n):
    """The frame number in ``range(n)`` whose value is nearest ``value``."""
    return min(range(n), key=lambda t: abs(frame_value(t) - float(value)))


@pytest.fixture(scope="session")
def numbers():
    """``numbers(rgb_rows, n)``: the source frame number of each decoded 224x224 BGR row (read at a
    point right of the white bar)."""
    return lambda rgb, n: [frame_number(v, n) for v in rgb[:, 112, 180, 2]]


@pytest.fixture(scope="session")
def make_video():
    """``make_video(path, n, fps, size=(96, 64), vcodec="libx264", pix_fmt="yuv420p", rotate=0)``"""
    from tapos.data.machinery.ffmpeg import encode_video, ffmpeg_binary

    def make(path, n, fps, size=(96, 64), vcodec="libx264", pix_fmt="yuv420p", rotate=0):
        path = Path(path)
        target = path.with_name("unrotated_" + path.name) if rotate else path
        encode_video(numbered_frames(n, *size), target, fps, crf=4, vcodec=vcodec, pix_fmt=pix_fmt)
        if rotate:  # a phone video: stored landscape, displayed rotated
            subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-display_rotation", str(rotate), "-i", str(target),
                            "-c", "copy", str(path)], check=True)
            target.unlink()
        return path

    return make


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory):
    """Five short videos of different sizes and rates, one in a subfolder."""
    import numpy as np

    from tapos.data.machinery.ffmpeg import encode_video

    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    specs = [("a.mp4", 13, 25, (96, 64)), ("b.mp4", 9, 30, (64, 96)), ("sub/c.mp4", 11, 15, (128, 72)),
             ("d.mkv", 8, 24, (80, 80)), ("e.mp4", 10, 25, (96, 64))]
    for name, n, fps, (w, h) in specs:
        frames = [(rng.random((h, w, 3)) * 255).astype(np.uint8) for _ in range(n)]
        encode_video(frames, root / name, fps, crf=10, **({"vcodec": "ffv1", "pix_fmt": "yuv444p"}
                                                          if name.endswith(".mkv") else {}))
    return root


@pytest.fixture(scope="module")
def frame_clips(tmp_path_factory, make_video):
    """Six 30-frame clips named by their instance keys (numbered frames), two classes, with their
    annotation file ``ann.json`` (videos in ``videos/``)."""
    from tapos.data import save_annotations
    from tapos.data.annotations import Instance

    root = tmp_path_factory.mktemp("frames")
    videos = root / "videos"
    instances = []
    for i in range(6):
        inst = Instance(f"clip{i:02d}_abcd", "s00001_0_000_1_200", i % 2, "val" if i >= 4 else "train", 30,
                        (0, 10, 30), (0.0, 2.0))
        make_video(videos / f"{inst.key}.mp4", 30, 25)
        instances.append(inst)
    save_annotations(instances, root / "ann.json")
    return root


def with_random_boundaries(ann, path, subset: str, seed: int = 0):
    """Write ``ann`` to ``path`` with every ``subset`` instance's boundaries replaced by 1-4 random
    ones (a check that something never reads them); returns ``path``."""
    import dataclasses

    import numpy as np

    from tapos.data import save_annotations

    rng = np.random.default_rng(seed)
    out = []
    for inst in ann.values():
        if inst.subset == subset:
            n = int(rng.integers(1, 5))
            inner = np.sort(rng.choice(np.arange(1, inst.total_frames), size=n, replace=False)).tolist()
            inst = dataclasses.replace(inst, substages=(0, *inner, inst.total_frames))
        out.append(inst)
    save_annotations(out, path)
    return path
