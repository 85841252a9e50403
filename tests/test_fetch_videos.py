"""fetch-videos and check-videos against a local HTTP server (no network): yt-dlp's generic
extractor downloads synthetic source videos; failures, crashes and bad sources are made on purpose."""
import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

from conftest import BIN
from tapos.data import FeatureReader, load_annotations
from tapos.data.errors import TaposError
from tapos.data.machinery.ffmpeg import ffmpeg_binary, probe_complete

pytest.importorskip("yt_dlp")

GOOD = 5  # the first five YouTube ids are served whole; then one 404, one truncated, one cut mid-transfer


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.root/<name>``; counts requests per name; a name in ``server.closes`` gets
    its headers (full length) and half its bytes, then the connection closes; one in
    ``server.stalls`` gets half its bytes, then nothing until its event is set."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        name = unquote(self.path.lstrip("/"))
        with server.lock:
            server.hits[name] += 1
        path = server.root / name
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self._send(server, name, data)
        except OSError:  # the client went away (a killed process, an extractor that read the headers)
            pass

    def _send(self, server, name, data):
        if name in server.closes or name in server.stalls:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if name in server.stalls:
                server.stalls[name].wait(60)
            self.close_connection = True
            return
        self.wfile.write(data)


@pytest.fixture(scope="module")
def data(tmp_path_factory, cli):
    """Synthetic sources (one instance per YouTube id), the folder the server serves, the roles."""
    root = tmp_path_factory.mktemp("fetch")
    cli("tapos-data", "synth", root / "syn", "--instances", 8, "--classes", 2, "--seed", 7, "--sources",
        "--set", "instances_per_video=1", "--set", "first_shot_max=1", "--set", "duration_range=[1.0,2.0]",
        "--set", "video_size=[64,48]", "--set", "val_fraction=0.25")
    ann_path = root / "syn" / "tapos_annotation.json"
    ann = load_annotations(ann_path)
    ids = list(dict.fromkeys(i.youtube_id for i in ann.values()))
    assert len(ids) == 8
    served = root / "served"
    served.mkdir()
    roles = {"good": ids[:GOOD], "missing": ids[GOOD], "truncated": ids[GOOD + 1], "closes": ids[GOOD + 2]}
    for yid in ids:
        src = (root / "syn" / "sources" / f"{yid}.mp4").read_bytes()
        if yid == roles["truncated"]:
            src = src[: int(len(src) * 0.6)]  # its header (at the front) still says the full duration
        if yid != roles["missing"]:
            (served / f"{yid}.mp4").write_bytes(src)
    return {"root": root, "ann_path": ann_path, "ann": ann, "ids": ids, "served": served, **roles}


@pytest.fixture(scope="module")
def server(data):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.root, srv.hits, srv.lock, srv.closes, srv.stalls = data["served"], Counter(), threading.Lock(), set(), {}
    srv.closes.add(f"{data['closes']}.mp4")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.template = f"http://127.0.0.1:{srv.server_address[1]}/{{id}}.mp4"
    with pytest.MonkeyPatch.context() as mp:  # never through a proxy, even where one is configured
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        yield srv
    for event in srv.stalls.values():
        event.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def fetched(data, server, cli):
    """One run over every id: the five good ones arrive, the three others fail."""
    out = data["root"] / "fetched"
    proc = cli("tapos-data", "fetch-videos", data["ann_path"], out, "--url-template", server.template,
               "--jobs", 2, check=False)
    return out, proc


def _visible(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def test_fetch_downloads_and_isolates_failures(data, server, fetched):
    out, proc = fetched
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    # only complete videos under their final names and the report: nothing half-written, no temporaries
    assert _visible(out) == sorted([f"{yid}.mp4" for yid in data["good"]] + ["failures.json"])
    for yid in data["good"]:
        assert (out / f"{yid}.mp4").read_bytes() == (data["served"] / f"{yid}.mp4").read_bytes()
    report = json.loads((out / "failures.json").read_text())
    got = {f["youtube_id"]: f["category"] for f in report["failed"]}
    assert got == {data["missing"]: "http 404", data["truncated"]: "truncated", data["closes"]: "network"}
    assert report["downloaded"] == GOOD and all(f["instances"] == 1 for f in report["failed"])
    lines = [line for line in proc.stderr.splitlines() if line.split(":")[0] in got]
    assert sorted(line.split(": ")[1] for line in lines) == sorted(got.values())  # one line each
    assert "3 videos failed" in proc.stderr.splitlines()[-1]
    # the summary: per split, instances with their source now and without
    ann = data["ann"]
    for split in ("train", "val"):
        insts = list(ann.split(split).values())
        have = sum(i.youtube_id in data["good"] for i in insts)
        assert f"{split}: {have} of {len(insts)} instances have their source video, {len(insts) - have} missing" \
            in proc.stdout


def _write_subset(ann, ids, path):
    from tapos.data import save_annotations

    order = {yid: k for k, yid in enumerate(ids)}
    save_annotations(sorted((i for i in ann.values() if i.youtube_id in order), key=lambda i: order[i.youtube_id]),
                     path)
    return path


def _wait_for(predicate, proc, timeout=60.0):
    start = time.monotonic()
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"fetch-videos ended before the kill ({proc.returncode}):\n{out}\n{err}")
        if time.monotonic() - start > timeout:
            pytest.fail("the download of the stalled video never started")
        time.sleep(0.05)


def test_resume_after_kill_downloads_only_what_is_missing(data, server, cli, tmp_path):
    good, last = data["good"], data["good"][-1]
    ann_path = _write_subset(data["ann"], good, tmp_path / "good.json")  # the stalled video comes last
    out = tmp_path / "out"
    server.stalls[f"{last}.mp4"] = threading.Event()
    cmd = [str(BIN / "tapos-data"), "fetch-videos", str(ann_path), str(out), "--url-template", server.template,
           "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
    try:
        _wait_for(lambda: any(p.name.startswith(f".part-{last}.") for p in out.glob(".part-*")), proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        server.stalls.pop(f"{last}.mp4").set()
    # killed mid-download: the finished videos are whole under their names, the last one only hidden
    done = [yid for yid in good if yid != last]
    assert [p for p in _visible(out) if not p.startswith(".")] == sorted(f"{yid}.mp4" for yid in done)
    for yid in done:
        probe_complete(out / f"{yid}.mp4")
    # a rerun downloads what is missing or broken, and nothing that is complete
    broken = done[0]
    (out / f"{broken}.mp4").write_bytes(b"not a video")
    server.hits.clear()
    proc = cli("tapos-data", "fetch-videos", ann_path, out, "--url-template", server.template)
    assert "3 complete already" in proc.stdout
    assert {name for name, n in server.hits.items() if n} == {f"{last}.mp4", f"{broken}.mp4"}
    assert _visible(out) == sorted(f"{yid}.mp4" for yid in good)  # no temporaries, no failure report
    for yid in good:
        assert (out / f"{yid}.mp4").read_bytes() == (data["served"] / f"{yid}.mp4").read_bytes()
    # --overwrite downloads everything again
    server.hits.clear()
    cli("tapos-data", "fetch-videos", ann_path, out, "--url-template", server.template, "--overwrite")
    assert {name for name, n in server.hits.items() if n} == {f"{yid}.mp4" for yid in good}


def _ffmpeg(*args):
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", *map(str, args)], check=True)


def test_check_videos_flags_wrong_rate_short_missing_and_truncated(data, fetched, cli, tmp_path):
    out, _ = fetched
    videos = tmp_path / "videos"
    shutil.copytree(out, videos)
    ann = data["ann"]
    inst = {i.youtube_id: i for i in ann.values()}  # one instance per id
    rate, shot, cut, ok1, ok2 = data["good"]
    src = lambda yid: data["root"] / "syn" / "sources" / f"{yid}.mp4"  # noqa: E731
    _ffmpeg("-i", src(rate), "-vf", "fps=10", "-c:v", "libx264", videos / f"{rate}.mp4")  # same length, 10 fps
    shot_end, inst_end = inst[shot].shot_timestamps[1], inst[shot].end
    _ffmpeg("-i", src(shot), "-t", f"{(inst_end + shot_end) / 2:.3f}", "-c:v", "libx264", videos / f"{shot}.mp4")
    _ffmpeg("-i", src(cut), "-t", f"{inst[cut].start + inst[cut].duration / 2:.3f}", "-c:v", "libx264",
            videos / f"{cut}.mp4")
    shutil.copy(data["served"] / f"{data['truncated']}.mp4", videos)  # what a plain downloader would keep
    proc = cli("tapos-data", "check-videos", data["ann_path"], videos, "--json", tmp_path / "check.json")
    report = json.loads((tmp_path / "check.json").read_text())
    status = {c["youtube_id"]: c["status"] for c in report["instances"]}
    assert status == {rate: "wrong rate", shot: "too short", cut: "too short", ok1: "ok", ok2: "ok",
                      data["truncated"]: "undecodable", data["missing"]: "missing", data["closes"]: "missing"}
    reasons = {c["youtube_id"]: c["reason"] for c in report["instances"]}
    assert "before its shot ends" in reasons[shot] and "inside the instance" in reasons[cut]
    assert "truncated" in reasons[data["truncated"]]
    rescaled = {c["youtube_id"] for c in report["instances"] if c["rescaled"]}
    assert rate in rescaled and not rescaled & {ok1, ok2}
    total = report["splits"]["all"]
    assert (total["instances"], total["ok"], total["missing"], total["undecodable"], total["too short"],
            total["wrong rate"]) == (8, 2, 2, 1, 2, 1)
    assert proc.returncode == 0 and "wrong rate" in proc.stdout.splitlines()[0]  # the table, by split
    assert f"{inst[rate].key}: wrong rate: source at 10 fps" in proc.stderr
    strict = cli("tapos-data", "check-videos", data["ann_path"], videos, "--strict", check=False)
    assert strict.returncode == 1 and "6 of 8 instances are not ok" in strict.stderr
    assert "Traceback" not in strict.stderr
    # the sources as downloaded are all fine: no false alarm on a source that covers its shots
    clean = cli("tapos-data", "check-videos", data["ann_path"], out, "--strict", check=False)
    assert clean.returncode == 1 and "3 of 8 instances are not ok" in clean.stderr


def test_extract_cuts_the_fetched_instances(data, fetched, cli, tmp_path):
    out, _ = fetched
    feats = tmp_path / "feats.h5"
    proc = cli("tapos-extract", out, feats, "--annotations", data["ann_path"], "--weights", "random",
               "--modality", "rgb", "--fps", 3, "--no-progress", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # the three videos that never came
    ann = data["ann"]
    with FeatureReader(feats) as reader:
        assert sorted(reader.keys()) == sorted(i.key for i in ann.values() if i.youtube_id in data["good"])
        for key in reader.keys():  # rows over the instance's duration at 3 per second
            assert abs(len(reader.read(key)) - 3 * ann[key].duration) <= 1
    failed = json.loads(tmp_path.joinpath("feats.failures.json").read_text())["failed"]
    assert sorted(f["key"] for f in failed) == sorted(i.key for i in ann.values() if i.youtube_id not in data["good"])


@pytest.mark.parametrize("message, category", [
    ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video", "private"),
    ("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader", "removed"),
    ("ERROR: [youtube] abc: Video unavailable. This video is no longer available because the YouTube account "
     "associated with this video has been terminated.", "removed"),
    ("ERROR: [youtube] abc: Video unavailable. The uploader has not made this video available in your country",
     "unavailable in your region"),
    ("ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate for some users.",
     "age-restricted (try --cookies)"),
    ("ERROR: [youtube] abc: Sign in to confirm you\u2019re not a bot.", "sign-in required (try --cookies)"),
    ("ERROR: [youtube] abc: Video unavailable", "unavailable"),
    ("ERROR: Unable to download webpage: <urlopen error [Errno 111] Connection refused>", "network"),
    ("ERROR: [generic] Unsupported URL: https://example.com/page", "not a video"),
    ("ERROR: [youtube] abc: Requested format is not available", "no format matches --format"),
    ("ERROR: unable to download video data: HTTP Error 403: Forbidden", "http 403"),
    ("ERROR: something nobody has seen", "other"),
])
def test_failure_categories_of_ytdlp_messages(message, category):
    from yt_dlp.utils import DownloadError

    from tapos.data.machinery.fetch import failure_category

    got, reason = failure_category(DownloadError(message))
    assert got == category
    assert "\n" not in reason and not reason.startswith("ERROR")


def test_one_line_errors(data, cli, tmp_path, monkeypatch):
    proc = cli("tapos-data", "fetch-videos", data["ann_path"], tmp_path / "a", "--url-template", "http://h/x.mp4",
               check=False)
    assert proc.returncode == 1 and "needs {id}" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "a").exists()  # nothing made before the options are known to be good
    monkeypatch.setitem(__import__("sys").modules, "yt_dlp", None)  # as if the extra were not installed
    proc = cli("tapos-data", "fetch-videos", data["ann_path"], tmp_path / "b", check=False)
    assert proc.returncode == 1 and "pip install 'tapos[fetch]'" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(TaposError, match="no such file"):
        from tapos.data.machinery.check_videos import check_videos

        check_videos(data["ann_path"], tmp_path / "nowhere")


def _format(fid, width, height, vcodec, size, acodec="none"):
    return {"format_id": fid, "url": f"http://x/{fid}", "ext": "mp4", "width": width, "height": height,
            "vcodec": vcodec, "acodec": acodec, "filesize": size, "protocol": "https"}


def _chosen(formats):
    import yt_dlp

    from tapos.data.machinery.fetch import ytdlp_params

    info = {"id": "x", "title": "x", "formats": formats, "extractor": "t", "extractor_key": "T",
            "webpage_url": "http://x"}
    with yt_dlp.YoutubeDL({**ytdlp_params(), "simulate": True}) as ydl:
        return ydl.process_ie_result(info, download=False)["format_id"]


def test_default_format_is_the_smallest_stream_at_or_above_256_px():
    landscape = [_format(f"{h}-{c}", h * 16 // 9, h, c, h * size) for h in (144, 240, 360, 480, 720)
                 for c, size in (("av01", 7), ("vp9", 8), ("avc1", 10))]
    landscape.append(_format("18", 640, 360, "avc1", 4000, acodec="mp4a"))  # with audio: more bytes
    assert _chosen(landscape) == "360-avc1"  # H.264, the codec every ffmpeg decodes, over smaller AV1
    assert _chosen([f for f in landscape if f["height"] < 256]) == "240-avc1"  # else the largest below
    portrait = [_format("144", 144, 256, "avc1", 5), _format("256", 256, 456, "avc1", 10),
                _format("360", 360, 640, "avc1", 20)]
    assert _chosen(portrait) == "256"  # the short side counts
