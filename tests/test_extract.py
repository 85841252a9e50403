"""tapos-extract end to end: real videos, real HDF5, resume, crash safety, merge, torchrun."""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tapos.data import FeatureDataset, FeatureReader, load_annotations
from tapos.data.errors import FeatureCacheError, TaposError
from tapos.extract import Clip, clips_from_annotations, extract, read_clip
from tapos.extract.backbone import Backbone
from tapos.extract.store import parts_dir

BIN = Path(sys.executable).parent
# small and quick: every other frame, rgb only, tiny batches that split clips across batches
ARGS = ["--weights", "random", "--stride", "2", "--batch-size", "3", "--no-progress"]


def run(*args, check=True, **kw):
    proc = subprocess.run([str(BIN / "tapos-extract"), *map(str, args)], capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"tapos-extract {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def contents(path):
    with FeatureReader(path) as r:
        return {k: (r.read(k, "rgb", dtype=None), r.frame_index(k), r.info(k)) for k in r.keys()}


@pytest.fixture(scope="session")
def reference(video_dir, tmp_path_factory):
    """An uninterrupted extraction of video_dir with ARGS."""
    out = tmp_path_factory.mktemp("ref") / "feats.h5"
    run(video_dir, out, *ARGS)
    return out


def assert_same(a, b, exact=True):
    """Same keys, rows and attributes; features bit-identical (same process settings) or equal up
    to float16 rounding (other thread counts sum convolutions in another order)."""
    ca, cb = contents(a), contents(b)
    assert sorted(ca) == sorted(cb)
    for k in ca:
        assert ca[k][0].dtype == cb[k][0].dtype and ca[k][0].shape == cb[k][0].shape, k
        if exact:
            assert np.array_equal(ca[k][0], cb[k][0]), k
        else:
            np.testing.assert_allclose(ca[k][0].astype(np.float32), cb[k][0].astype(np.float32), rtol=2e-2, atol=0.1)
        assert np.array_equal(ca[k][1], cb[k][1]) and ca[k][2] == cb[k][2], k


def test_folder_extraction_keys_rows_and_attributes(reference, video_dir):
    with FeatureReader(reference) as r:
        assert sorted(r.keys()) == ["a", "b", "d", "e", "sub__c"]
        info = r.info("sub__c")
        assert info.num_rows == 6 and info.num_frames == 11 and info.fps == pytest.approx(7.5)
        assert info.dims == {"rgb": 1024}
        assert r.frame_index("a").tolist() == [0, 2, 4, 6, 8, 10, 12]
        attrs = r.attrs
        assert attrs["weights"] == "rgb: random" and attrs["backbone"] == "bninception"
        assert attrs["schema"] == "tapos-features/1" and attrs["modalities"] == "rgb"
        assert r.read("a", "rgb", dtype=None).dtype == np.float16
    # the rows are exactly the backbone applied to the decoded frames, whatever the batching
    chunk, _ = read_clip(Clip("a", video_dir / "a.mp4"), ("rgb",))
    expect = Backbone("rgb", weights="random")(chunk.rgb[::2]).astype(np.float16)
    with FeatureReader(reference) as r:
        got = r.read("a", "rgb", dtype=None)
    np.testing.assert_allclose(got.astype(np.float32), expect.astype(np.float32), rtol=2e-3, atol=2e-3)


def test_rerun_skips_checked_parts_and_redoes_damaged_ones(video_dir, reference, tmp_path):
    out = tmp_path / "feats.h5"
    shutil.copy(reference, out)
    shutil.copytree(parts_dir(reference), parts_dir(out))
    proc = run(video_dir, out, *ARGS)
    assert "0 extracted" in proc.stdout and "5 already done" in proc.stdout
    # a damaged part (truncated, as a full disk leaves it) and a deleted one are redone
    part = parts_dir(out) / "b.h5"
    part.write_bytes(part.read_bytes()[:3000])
    (parts_dir(out) / "d.h5").unlink()
    proc = run(video_dir, out, *ARGS)
    assert "2 extracted" in proc.stdout and "3 already done" in proc.stdout
    assert_same(out, reference)
    proc = run(video_dir, out, *ARGS, "--overwrite")
    assert "5 extracted" in proc.stdout
    assert_same(out, reference)


def test_other_settings_need_overwrite(video_dir, reference, tmp_path):
    out = tmp_path / "feats.h5"
    shutil.copy(reference, out)
    shutil.copytree(parts_dir(reference), parts_dir(out))
    before = out.read_bytes()
    proc = run(video_dir, out, "--weights", "random", "--stride", "3", "--no-progress", check=False)
    assert proc.returncode == 1 and "other settings (stride)" in proc.stderr
    assert "Traceback" not in proc.stderr and out.read_bytes() == before


def test_resumes_a_run_started_before_the_settings_record(video_dir, reference, tmp_path):
    out = tmp_path / "feats.h5"
    shutil.copy(reference, out)
    shutil.copytree(parts_dir(reference), parts_dir(out))
    path = parts_dir(out) / "settings.json"
    old = json.loads(path.read_text())
    assert old["stride"] == 2 and old["weights"] == {"rgb": "random"} and old["tool_version"]
    for name in ("flow_params", "tool_version"):  # what the older settings.json did not hold
        del old[name]
    path.write_text(json.dumps({**old, "schema": "tapos-features/1"}))
    proc = run(video_dir, out, *ARGS)
    assert "0 extracted" in proc.stdout and "5 already done" in proc.stdout


def test_refuses_to_replace_a_cache_it_did_not_write(video_dir, tmp_path, synth_dir):
    out = tmp_path / "features.h5"
    shutil.copy(synth_dir / "features.h5", out)
    before = out.read_bytes()
    proc = run(video_dir, out, *ARGS, check=False)
    assert proc.returncode == 1 and "holds features of its own" in proc.stderr
    assert out.read_bytes() == before


def test_bad_videos_are_isolated(video_dir, tmp_path):
    vids = tmp_path / "vids"
    vids.mkdir()
    shutil.copy(video_dir / "b.mp4", vids / "b.mp4")
    (vids / "junk.mp4").write_bytes(b"\x00not a video" * 50)
    good = (video_dir / "a.mp4").read_bytes()
    (vids / "trunc.mp4").write_bytes(good[: len(good) // 3])
    out = tmp_path / "feats.h5"
    proc = run(vids, out, *ARGS, check=False)
    assert proc.returncode == 1
    assert "2 of 3 clips failed" in proc.stderr and "junk.mp4" in proc.stderr and "Traceback" not in proc.stderr
    report = json.loads((tmp_path / "feats.failures.json").read_text())
    reasons = {f["key"]: f["reason"] for f in report["failed"]}
    assert sorted(reasons) == ["junk", "trunc"] and "damaged or truncated" in reasons["trunc"]
    assert {f["video"] for f in report["failed"]} == {str(vids / "junk.mp4"), str(vids / "trunc.mp4")}
    assert report["extracted"] == 1 and report["indexed"] == 1
    with FeatureReader(out) as r:
        assert r.keys() == ["b"]
    # fixed videos: the rerun extracts them and the report of old failures goes away
    shutil.copy(video_dir / "a.mp4", vids / "trunc.mp4")
    (vids / "junk.mp4").unlink()
    proc = run(vids, out, *ARGS)
    assert "1 extracted" in proc.stdout and "1 already done" in proc.stdout and " rows/s)" in proc.stdout
    assert not (tmp_path / "feats.failures.json").exists()


def test_merge_makes_one_self_contained_file(reference, tmp_path):
    out = tmp_path / "feats.h5"
    shutil.copy(reference, out)
    shutil.copytree(parts_dir(reference), parts_dir(out))
    merged = tmp_path / "moved" / "all.h5"
    merged.parent.mkdir()
    run("merge", out, merged, "--no-progress")
    shutil.rmtree(parts_dir(out))
    with FeatureReader(out) as r:  # the index alone now points nowhere: a clear error
        with pytest.raises(FeatureCacheError, match="cannot open .*feats.parts/a.h5"):
            r.read("a")
    with h5py.File(merged) as f:
        assert not any(isinstance(f["instances"].get(k, getlink=True), h5py.ExternalLink) for k in f["instances"])
        assert "parts_dir" not in f.attrs
    assert_same(merged, reference)


def test_annotations_cut_instances_from_source_videos(tmp_path):
    from tapos.data.synth import write_dataset

    paths = write_dataset(tmp_path / "syn", 3, 2, seed=5, videos=True, sources=True, progress=False,
                          first_shot_max=2.0, duration_range=[2.0, 3.0])
    ann = load_annotations(paths["annotations"])
    out = tmp_path / "cut.h5"
    run(paths["sources"], out, "--annotations", paths["annotations"], "--weights", "random", "--fps", "3",
        "--no-progress")
    ds = FeatureDataset(out, ann, "train", "rgb")  # rows line up with the annotation's duration
    assert sorted(ds.keys) == sorted(ann.split("train"))
    # the same instances extracted from their own clips give (nearly) the same features
    clips = tmp_path / "clips.h5"
    run(paths["videos"], clips, "--weights", "random", "--fps", "3", "--no-progress")
    with FeatureReader(out) as a, FeatureReader(clips) as b:
        for key in ds.keys:
            x, y = a.read(key), b.read(key)
            assert x.shape == y.shape
            cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
            assert cos.min() > 0.98, (key, cos.min())
    # an instance whose source video is missing is reported, the others are kept
    victim = next(iter(ann.values())).youtube_id
    (paths["sources"] / f"{victim}.mp4").unlink()
    clips, missing = clips_from_annotations(paths["annotations"], paths["sources"])
    assert [k for k, _ in missing] == [i.key for i in ann.values() if i.youtube_id == victim]
    assert all(c.start is not None for c in clips)  # cut from sources
    # instance clips named by their key are taken whole, before any source video
    both = tmp_path / "both"
    shutil.copytree(paths["sources"], both)
    shutil.copy(paths["videos"] / f"{ds.keys[0]}.mp4", both)
    clips, _ = clips_from_annotations(paths["annotations"], both)
    assert [c.start is None for c in clips] == [c.key == ds.keys[0] for c in clips]


def _read_all(path):
    """Everything the index links must read back (the index may be absent early on)."""
    if not path.exists():
        return
    with FeatureReader(path) as r:
        for k in r.keys():
            r.read(k)


def test_kill_at_random_points_then_rerun_gives_the_uninterrupted_result(video_dir, reference, tmp_path):
    out = tmp_path / "feats.h5"
    rng = random.Random(1234)
    cmd = [str(BIN / "tapos-extract"), str(video_dir), str(out), *ARGS, "--decoders", "1"]
    kills = attempts = 0
    while kills < 4 and attempts < 15:
        attempts += 1
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 7.0))  # from start-up to the index write
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
            proc.wait()
            _read_all(out)  # whatever the index links after a kill is intact
            for part in parts_dir(out).glob("*.h5"):
                with FeatureReader(part) as r:
                    r.read(part.stem)
        else:  # it finished before the kill: start over so that the next kill interrupts work
            assert proc.wait() == 0
            out.unlink()
            shutil.rmtree(parts_dir(out))
    assert kills == 4
    run(video_dir, out, *ARGS)
    assert_same(out, reference)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_share_the_work(video_dir, reference, tmp_path):
    videos = tmp_path / "videos"
    shutil.copytree(video_dir, videos)
    for name in ("x_bad.mp4", "y_bad.mp4"):  # clips 6 and 7 in key order: one failure on each rank
        (videos / name).write_bytes(b"not a video" * 100)
    out = tmp_path / "feats.h5"
    cmd = [str(BIN / "torchrun"), "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port",
           str(_free_port()), "-m", "tapos.extract", str(videos), str(out), *ARGS]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    # (torchrun itself prints a traceback when a process exits with an error status)
    assert proc.returncode != 0 and "Error: 2 of 7 clips failed (all listed in" in proc.stderr, proc.stderr[-3000:]
    done = [int(line.split(": ")[1].split()[0]) for line in proc.stdout.splitlines() if " extracted (" in line]
    assert sorted(done) == [2, 3]  # five good clips split over two ranks
    assert_same(out, reference, exact=False)
    report = json.loads((tmp_path / "feats.failures.json").read_text())  # rank 0 reports both ranks' failures
    assert sorted(f["key"] for f in report["failed"]) == ["x_bad", "y_bad"] and report["extracted"] == 5


def test_independent_processes_on_one_output(video_dir, reference, tmp_path):
    out = tmp_path / "feats.h5"
    cmd = [str(BIN / "tapos-extract"), str(video_dir), str(out), *ARGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    extracted = sum(int(o.split(": ")[1].split()[0]) for o, _ in outs)
    assert extracted == 5  # each clip extracted once: claims keep the processes apart
    assert_same(out, reference, exact=False)


def test_library_options_and_missing_input(tmp_path):
    with pytest.raises(TaposError, match="unknown option"):
        extract(tmp_path, tmp_path / "x.h5", colour="red")
    proc = run(tmp_path / "nothing", tmp_path / "x.h5", "--weights", "random", check=False)
    assert proc.returncode == 1 and "nothing: no such file or folder" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = run(tmp_path / "empty", tmp_path / "x.h5", "--weights", "random", check=False)
    assert proc.returncode == 1 and "no videos found" in proc.stderr
    assert not (tmp_path / "x.h5").exists()


def test_gpu_out_of_memory_is_one_line(tmp_path, monkeypatch, video_dir):
    import torch
    from click.testing import CliRunner

    import tapos.extract.pipeline as pipeline
    from tapos.extract.cli import main

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    monkeypatch.setattr(pipeline, "extract", oom)
    result = CliRunner().invoke(main, [str(video_dir), str(tmp_path / "x.h5"), "--batch-size", "4096"])
    assert result.exit_code == 1
    assert "out of GPU memory (CUDA out of memory. Tried to allocate 2.00 GiB)" in result.output
    assert "--batch-size" in result.output and "Traceback" not in result.output


def test_parts_are_written_by_the_writer_thread_and_write_errors_stay_per_clip(video_dir, tmp_path, monkeypatch):
    import threading

    from tapos.extract.store import PartStore

    threads, original = [], PartStore.write

    def write(self, key, *args, **kwargs):
        threads.append(threading.current_thread().name)
        if key == "b":
            raise OSError(28, "No space left on device")
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(PartStore, "write", write)
    out = tmp_path / "feats.h5"
    report = extract(video_dir, out, weights="random", stride=2, batch_size=3, progress=False)
    assert threads == ["tapos-part-writer"] * 5
    assert sorted(report.done) == ["a", "d", "e", "sub__c"] and [k for k, _ in report.failed] == ["b"]
    assert "No space left on device" in report.failed[0][1]
    monkeypatch.setattr(PartStore, "write", original)
    again = extract(video_dir, out, weights="random", stride=2, batch_size=3, progress=False)
    assert again.done == ["b"] and len(again.skipped) == 4 and not again.failed  # the claim was released


def test_extract_like_makes_a_clip_as_the_cache_was_made(reference, video_dir, tmp_path):
    """tapos.extract.extract_like (what tapos-parse video relies on): a clip through the cache's
    weights and sampling gives the cache's rows; weights other than the cache's are refused."""
    import torch

    from tapos.extract import build_bninception, extract_like

    got = extract_like(video_dir / "a.mp4", reference, tmp_path / "like.h5", progress=False)
    assert got.key == "a" and got.options["stride"] == 2 and got.options["weights"] == "random"
    with FeatureReader(reference) as r:
        np.testing.assert_allclose(got.features, r.read("a", "rgb"), rtol=2e-3, atol=2e-3)
        np.testing.assert_array_equal(got.timestamps, r.timestamps("a"))
        assert got.info == r.info("a")
    weights = tmp_path / "w.pth"
    torch.save(build_bninception("rgb").state_dict(), weights)
    with pytest.raises(TaposError, match="but the cache holds features from 'random'"):
        extract_like(video_dir / "a.mp4", reference, tmp_path / "other.h5", weights=str(weights), progress=False)
    assert not (tmp_path / "other.h5").exists()
