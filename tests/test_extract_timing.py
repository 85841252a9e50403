"""Rows on the video's own clock, on videos made with ffmpeg that each carry one real-world timing
pathology. Every frame's brightness encodes its number, and its presentation time is set in the
test, so each row's frame can be checked against the frame a player shows at the row's time."""
import json
import subprocess

import numpy as np
import pytest

from tapos.data import FeatureReader, load_annotations
from tapos.data.annotations import Instance
from tapos.data.machinery.ffmpeg import encode_video, ffmpeg_binary, probe
from tapos.extract.decode import Clip, Sampling, read_clip

from conftest import frame_number, numbered_frames

N = 60


def ffmpeg(*args):
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", *map(str, args)], check=True)


def retimed(tmp_path, name, pts_expr, n=N, out_args=()):
    """``n`` numbered frames, frame N presented at ``pts_expr`` seconds (an ffmpeg expression in N),
    in a Matroska file (millisecond timestamps) without B-frames, so times are as set."""
    src = tmp_path / f"src_{name}.mkv"
    encode_video(numbered_frames(n), src, 25, vcodec="ffv1", pix_fmt="yuv444p")
    out = tmp_path / name
    ffmpeg("-i", src, "-vf", f"setpts='({pts_expr})/TB'", "-fps_mode", "passthrough", "-c:v", "libx264", "-bf", "0",
           "-crf", "4", "-pix_fmt", "yuv444p", *out_args, out)
    return out


def shown(pts, t, rate):
    """The frame on the grid of ``rate`` at ``t`` s: the last frame whose time rounds to at most
    ``t`` on that grid (what ffmpeg's fps filter and a player agree on)."""
    return int(np.flatnonzero(np.asarray(pts) <= t + 0.5 / rate + 1e-9)[-1])


def rows_of(path, sampling=Sampling(), **clip):
    chunk, meta = read_clip(Clip("k", path, **clip), ("rgb",), sampling)
    got = [frame_number(v, N) for v in chunk.rgb[:, 112, 180, 2]]
    return got, meta.timestamps(chunk.frame_index), meta


def check_rows(got, times, pts, rate):
    for row, (frame, t) in enumerate(zip(got, times)):
        assert frame == shown(pts, t, rate), f"row {row} at {t:.4f} s holds frame {frame}"


def test_variable_frame_rate_jittered_timestamps(tmp_path):
    pts = [n / 25 + 0.012 * np.sin(1.3 * n) for n in range(N)]  # +-0.3 frame of jitter
    path = retimed(tmp_path, "vfr.mkv", "N/25+0.012*sin(1.3*N)")
    pts = [round(p, 3) for p in pts]
    got, times, meta = rows_of(path)
    assert meta.rate == pytest.approx(25, rel=0.01)
    check_rows(got, times, pts, meta.rate)
    # every row within half a frame of its frame's true time: nothing is skipped or doubled
    assert np.max(np.abs(np.asarray(pts)[got] - times)) <= 0.5 / meta.rate + 1e-3
    assert abs(len(got) - N) <= 1


def test_frames_missing_in_a_constant_rate_stream(tmp_path):
    # frames 20..29 of a 30 fps stream are gone; the others keep their times
    cfr = tmp_path / "cfr.mp4"
    encode_video(numbered_frames(N), cfr, 30, crf=4)
    gap = tmp_path / "gap.mp4"
    ffmpeg("-i", cfr, "-vf", "select='not(between(n\\,20\\,29))'", "-fps_mode", "passthrough", "-c:v", "libx264",
           "-crf", "4", gap)
    info = probe(gap)
    assert info.fps == 30 and info.num_frames == 50 and info.rate_mismatch
    got, times, meta = rows_of(gap)
    assert len(got) == N and times.tolist() == pytest.approx([t / 30 for t in range(N)])
    assert got == list(range(20)) + [19] * 10 + list(range(30, N))  # the hole shows the last frame before it


def test_avi_with_empty_frames(tmp_path):
    # an AVI whose stream claims 15 fps but holds 2 of every 7 frames (the rest empty chunks),
    # as downloaded footage does: every row keeps its time, --fps 2 gives rows over the whole span
    src = tmp_path / "n15.mp4"
    encode_video(numbered_frames(N), src, 15, crf=4)
    avi = tmp_path / "drops.avi"
    ffmpeg("-i", src, "-vf", "select='lt(mod(n\\,7)\\,2)'", "-fps_mode", "passthrough", "-c:v", "mpeg4", "-q:v", "1",
           avi)
    info = probe(avi)
    assert info.num_frames == 18 and info.fps == 15 and "18 frames" in info.rate_mismatch
    pts = [n / 15 for n in range(N) if n % 7 < 2]
    kept = [n for n in range(N) if n % 7 < 2]
    got, times, meta = rows_of(avi)
    assert len(got) == 58  # the last frame (57) ends at 58 / 15 s
    assert got == [kept[shown(pts, t, 15)] for t in times]
    got, times, meta = rows_of(avi, Sampling(fps=2))
    # row t: the grid frame nearest t / 2 s, at that frame's own time
    assert len(got) == 8 and times.tolist() == pytest.approx([np.floor(t * 7.5 + 0.5) / 15 for t in range(8)])
    assert got == [kept[shown(pts, t, 15)] for t in times]


def test_non_zero_start_time(tmp_path):
    cfr = tmp_path / "cfr.mp4"
    encode_video(numbered_frames(N), cfr, 30, crf=4)
    late = tmp_path / "late.mkv"
    ffmpeg("-i", cfr, "-c", "copy", "-output_ts_offset", "1.4", late)
    info = probe(late)
    assert info.duration == pytest.approx(2.0, abs=0.02) and info.num_frames == N
    got, times, _ = rows_of(late)
    assert got == list(range(N)) and times[0] == 0
    # an instance 0.51 s into the clip: frame 15 (0.51 * 30 = 15.3) comes first, whatever the offset
    got, times, _ = rows_of(late, start=0.51, duration=0.5)
    assert got == list(range(15, 30))


def test_mp4_with_an_edit_list(tmp_path):
    cfr = tmp_path / "cfr.mp4"
    encode_video(numbered_frames(N), tmp_path / "n30.mp4", 30, crf=4)
    ffmpeg("-i", tmp_path / "n30.mp4", "-c:v", "libx264", "-g", "30", "-crf", "4", cfr)
    cut = tmp_path / "cut.mp4"
    ffmpeg("-ss", "1.3", "-i", cfr, "-c", "copy", cut)  # stream copy: starts inside a GOP, via an edit list
    info = probe(cut)
    assert info.num_frames == 21 and not info.rate_mismatch  # the pre-roll before the edit is not counted
    got, times, _ = rows_of(cut)
    assert got == list(range(39, N))


def test_ntsc_rate_is_exact(tmp_path):
    path = tmp_path / "ntsc.mp4"
    encode_video(numbered_frames(N), path, 30000 / 1001, crf=4)
    info = probe(path)
    assert info.fps == 30000 / 1001
    got, times, meta = rows_of(path)
    assert got == list(range(N)) and times[-1] == pytest.approx(59 * 1001 / 30000, abs=1e-12)
    # an instance from 0.5 s: 0.5 * 29.97 = 14.985 -> frame 15; 1 s holds 30 grid frames
    got, times, _ = rows_of(path, start=0.5, duration=1.0)
    assert got == list(range(15, 45)) and len(times) == 30


def test_rate_different_from_the_annotation(tmp_path, cli):
    """The annotation counted 30 frames per second, this download is 25 fps: rows are the video's
    frames at their own times, and boundaries move by time."""
    path = tmp_path / "videos" / "yMK2zxDDs2A.mp4"
    encode_video(numbered_frames(N), path, 25, crf=4)
    inst = Instance("yMK2zxDDs2A", "s00000_0_400_1_400", 0, "train", 30, (0, 15, 30), (0.0, 2.4))
    (tmp_path / "ann.json").write_text(json.dumps({"yMK2zxDDs2A": {inst.instance_id: inst.to_entry()}}))
    # from 0.4 s for 1.0 s: frames 10..34 of the source
    got, times, meta = rows_of(path, start=0.4, duration=1.0)
    assert got == list(range(10, 35)) and meta.rate == 25
    cli("tapos-extract", tmp_path / "videos", tmp_path / "f.h5", "--annotations", tmp_path / "ann.json",
        "--weights", "random", "--no-progress")
    from tapos.data import FeatureDataset

    ds = FeatureDataset(tmp_path / "f.h5", load_annotations(tmp_path / "ann.json"), "train")
    item = ds[0]
    assert FeatureReader(tmp_path / "f.h5").timestamps(inst.key).tolist() == pytest.approx([t / 25 for t in range(25)])
    assert item["frames"].numpy().tolist() == pytest.approx([t * 30 / 25 for t in range(25)])
    # boundary 15 (0.483 s, between annotation frames 14 and 15) starts row 13 (0.52 s)
    assert item["row_boundaries"].tolist() == [13]
    # both TSNs place the aligned snippets on the same frames of the clip
    from tapos.tsn.data import SnippetDataset
    from tapos.tsn.frames import FrameSnippets

    for k in (2, 3, 4):
        feats = SnippetDataset(tmp_path / "f.h5", load_annotations(tmp_path / "ann.json"), "train", "rgb", "aligned", k,
                               train=False)
        frames = FrameSnippets(tmp_path / "videos", tmp_path / "ann.json", "train", "rgb", "aligned", k, train=False)
        assert feats.snippet_rows(0).tolist() == frames.starts(0).tolist()
    assert frames._layout(0)[2] == [13]


def test_extract_says_when_frames_are_missing_and_records_times(tmp_path, cli):
    src = tmp_path / "n15.mp4"
    encode_video(numbered_frames(N), src, 15, crf=4)
    videos = tmp_path / "videos"
    videos.mkdir()
    ffmpeg("-i", src, "-vf", "select='lt(mod(n\\,7)\\,2)'", "-fps_mode", "passthrough", "-c:v", "mpeg4", "-q:v", "1",
           videos / "drops.avi")
    out = cli("tapos-extract", videos, tmp_path / "f.h5", "--weights", "random", "--fps", "2", "--no-progress")
    text = out.stdout + out.stderr
    assert "drops" in text and "18 frames in 3.87 s" in text and "1 clip(s) with missing or repeated frames" in text
    reader = FeatureReader(tmp_path / "f.h5")
    info = reader.info("drops")
    assert info.num_rows == 8 and info.frame_rate == 15 and info.fps == 2
    assert reader.timestamps("drops").tolist() == pytest.approx([np.floor(t * 7.5 + 0.5) / 15 for t in range(8)])
