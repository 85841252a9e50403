"""tapos-parse analyze / show / video: the pattern analysis, the report, timelines, your own video."""
import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from tapos.parse.analyze import (edit_distance, planted_recovery, runs, shared_patterns, top_exemplars,
                                 typical_sequence, usage_matrix)


# --- building blocks on hand-made cases --------------------------------------------------------
def test_usage_matrix_counts_frames_per_class_and_pattern():
    labels = [np.array([0, 0, 2]), np.array([1, 1, 1, 2]), np.array([0])]
    u = usage_matrix(labels, [3, 5, 3], 4, [3, 5])
    assert u.loc[3].tolist() == [3, 0, 1, 0]
    assert u.loc[5].tolist() == [0, 3, 1, 0]
    assert u.to_numpy().sum() == 8


def test_shared_patterns_on_a_hand_built_case():
    usage = pd.DataFrame([[10, 0, 5], [0, 10, 5], [1, 0, 0], [100, 0, 1]], index=[0, 1, 2, 3])
    df = shared_patterns(usage, min_share=0.05)
    # p0: class 0 (0.67), class 2 (1.0), class 3 (0.99); p2: class 0 and 1 (0.33); class 3's p2 is 1% only
    assert df["pattern"].tolist() == [0, 2]
    assert df["classes"].tolist() == [[0, 2, 3], [0, 1]]
    assert df["frames"].tolist() == [111, 11]
    assert shared_patterns(usage, min_share=0.5)["pattern"].tolist() == [0]


def test_sequences_medoid_and_consistency():
    assert runs([3, 3, 7, 7, 3]) == [3, 7, 3]
    assert edit_distance([1, 2, 3], [1, 3]) == 1 and edit_distance([], [4, 5]) == 2
    typical, exact, sim = typical_sequence([[1, 2, 3], [1, 2, 3], [1, 3], [1, 2, 3, 4]])
    assert typical == [1, 2, 3] and exact == 0.5
    assert sim == pytest.approx((1 + 1 + 2 / 3 + 3 / 4) / 4)


def test_top_exemplars_one_per_instance_best_first():
    best = {"a": (np.array([4, 0]), np.array([0.9, 0.1])), "b": (np.array([2, 7]), np.array([0.95, 0.8])),
            "c": (np.array([1, 1]), np.array([0.2, 0.5]))}
    ex = top_exemplars(best, 2)
    p0 = ex[ex["pattern"] == 0]
    assert p0["key"].tolist() == ["b", "a"] and p0["row"].tolist() == [2, 4]
    assert ex[ex["pattern"] == 1]["key"].tolist() == ["b", "c"]


def test_planted_recovery_on_a_hand_built_case():
    truth = {"templates": [[0, 1], [0, 2], [1, 3]],  # prototype 0 in classes 0 and 1, prototype 1 in 0 and 2
             "segments": {"x": [0, 1], "y": [0, 2], "z": [1, 3]}}
    seg = pd.DataFrame({"key": ["x", "x", "y", "y", "z", "z"], "class": [0, 0, 1, 1, 2, 2],
                        "position": [1, 2, 1, 2, 1, 2], "pattern": [5, 6, 5, 7, 8, 6]})
    shared = shared_patterns(pd.DataFrame([[0] * 5 + [5, 5, 0, 0], [0] * 5 + [5, 0, 5, 0], [0] * 6 + [5, 0, 5]]),
                             0.05)
    rec = planted_recovery(seg, shared, truth)
    assert rec["planted"] == 2 and rec["recovered"] == 1  # prototype 0 -> p5 in both; prototype 1 -> p6 vs p8
    d = {x["prototype"]: x for x in rec["details"]}
    assert d[0]["pattern"] == 5 and d[0]["agreeing"] == [0, 1] and d[0]["recovered"]
    assert not d[1]["recovered"] and rec["specific"] == 1
    # the same pattern for another prototype of those classes: recovered, but not specific
    seg2 = seg.assign(pattern=[5, 5, 5, 7, 8, 6])
    rec2 = planted_recovery(seg2, shared_patterns(pd.DataFrame([[0] * 5 + [10, 0, 0, 0], [0] * 5 + [5, 0, 5, 0]]),
                                                  0.05), truth)
    assert rec2["recovered"] == 1 and rec2["specific"] == 0


# --- the commands on a trained model ----------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, cli):
    """Synthetic dataset with videos, and a TransParser trained on its features for a few epochs."""
    from tapos.data.synth import write_dataset

    root = tmp_path_factory.mktemp("analyze")
    write_dataset(root / "s", n_instances=36, n_classes=4, seed=5, features=True, videos=True, progress=False)
    cli("tapos-parse", "train", "--method", "transparser", "--features", root / "s/features.h5", "--annotations",
        root / "s/tapos_annotation.json", "--out", root / "tp", "--epochs", "3")
    return root


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href")]


def test_analyze_report_content(trained, cli):
    s = trained / "s"
    proc = cli("tapos-parse", "analyze", "--model", trained / "tp", "--features", s / "features.h5", "--annotations",
               s / "tapos_annotation.json", "--videos", s / "videos", "--truth", s / "synth_truth.json",
               "--out", trained / "report")
    rep = trained / "report"
    # every file the page references exists, and the exemplar thumbnails are among them
    refs = _Refs()
    refs.feed((rep / "index.html").read_text())
    assert refs.refs and all((rep / r).is_file() for r in refs.refs)
    thumbs = [r for r in refs.refs if re.match(r"img/p\d+_\d+\.png$", r)]
    ex = pd.read_csv(rep / "exemplars.csv")
    assert len(set(thumbs)) == len(ex) > 0  # shared patterns show their exemplars again
    # the usage matrix sums to the frames analysed: every row of every val instance
    from tapos.data import FeatureReader, load_annotations

    ann = load_annotations(s / "tapos_annotation.json")
    reader = FeatureReader(s / "features.h5")
    frames = sum(reader.info(k).num_rows for k in ann.split("val"))
    usage = pd.read_csv(rep / "usage.csv", index_col=0)
    assert usage.to_numpy().sum() == frames
    assert f"{frames} frames of {len(ann.split('val'))} val instances" in proc.stdout
    for c in usage.index:  # frames per class
        assert usage.loc[c].sum() == sum(reader.info(k).num_rows for k, i in ann.split("val").items() if i.action == c)
    # the shared list follows from the usage matrix by the documented rule
    share = usage.div(usage.sum(axis=1), axis=0)
    expect = {int(p) for p in usage.columns if (share[p] >= 0.05).sum() >= 2}
    shared = pd.read_csv(rep / "shared_patterns.csv")
    assert set(shared["pattern"]) == expect
    summary = json.loads((rep / "summary.json").read_text())
    assert summary["frames"] == frames and summary["classifier"] == "transparser's classifier"
    rec = summary["recovery"]
    assert 0 <= rec["specific"] <= rec["recovered"] <= rec["planted"] > 0
    assert "planted shared sub-actions recovered" in proc.stdout
    # one row per annotated sub-action of the val instances
    seg = pd.read_csv(rep / "segments.csv")
    assert len(seg) == sum(i.num_subactions for i in ann.split("val").values())
    disc = pd.read_csv(rep / "discriminative.csv")
    assert set(disc["class"]) == set(usage.index)


def _browser():
    import shutil

    return next((b for b in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                 if shutil.which(b)), None)


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium on this machine (file references are "
                                               "checked in test_analyze_report_content)")
def test_report_renders_in_headless_chromium(trained, cli, tmp_path):
    import subprocess

    s = trained / "s"
    cli("tapos-parse", "analyze", "--model", trained / "tp", "--features", s / "features.h5", "--annotations",
        s / "tapos_annotation.json", "--videos", s / "videos", "--top", "2", "--out", tmp_path / "rep")
    dom = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          (tmp_path / "rep/index.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "Shared sub-actions" in dom and dom.count("<img") >= 2
    shot = tmp_path / "page.png"
    subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,1600", (tmp_path / "rep/index.html").as_uri()], capture_output=True, timeout=120)
    assert shot.read_bytes()[:4] == b"\x89PNG"


def test_analyze_refuses_a_method_without_patterns(trained, cli, tmp_path):
    from tapos.parse.run import train

    s = trained / "s"
    train("pa", s / "features.h5", s / "tapos_annotation.json", tmp_path / "pa", progress=False)
    proc = cli("tapos-parse", "analyze", "--model", tmp_path / "pa", "--features", s / "features.h5", "--annotations",
               s / "tapos_annotation.json", "--out", tmp_path / "rep", check=False)
    assert proc.returncode == 1 and "learns no sub-action patterns" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "rep").exists()


def test_show_draws_an_instance_with_its_predictions(trained, cli, tmp_path):
    s = trained / "s"
    from tapos.data import load_annotations

    ann = load_annotations(s / "tapos_annotation.json")
    key = next(iter(ann.split("val")))
    args = ["--model", trained / "tp", "--features", s / "features.h5", "--annotations", s / "tapos_annotation.json"]
    proc = cli("tapos-parse", "show", *args, "--key", key, "--out", tmp_path / "t.png", "--videos", s / "videos")
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cli("tapos-parse", "predict", *args, "--out", tmp_path / "pred.json", "--seconds")
    want = json.loads((tmp_path / "pred.json").read_text())[key]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("predicted"))
    got = [float(v) for v in line.split(":")[1].split()] if "none" not in line else []
    assert np.allclose(got, want, atol=0.006)
    bad = cli("tapos-parse", "show", *args, "--key", "nope", "--out", tmp_path / "x.png", check=False)
    assert bad.returncode == 1 and "no instance 'nope'" in bad.stderr


# --- parsing a video of your own ---------------------------------------------------------------
@pytest.fixture(scope="module")
def extracted(tmp_path_factory, cli):
    """A small synthetic set rendered as clips, BNInception features (random weights, 3 rows/s),
    and a k-means parser trained on them."""
    from tapos.data.synth import write_dataset

    root = tmp_path_factory.mktemp("video")
    write_dataset(root / "s", n_instances=12, n_classes=3, seed=8, videos=True, progress=False)
    cli("tapos-extract", root / "s/videos", root / "ext.h5", "--annotations", root / "s/tapos_annotation.json",
        "--weights", "random", "--modality", "rgb", "--fps", "3")
    cli("tapos-parse", "train", "--method", "kmeans", "--features", root / "ext.h5", "--annotations",
        root / "s/tapos_annotation.json", "--modality", "rgb", "--out", root / "km", "--set", "k=6")
    return root


def test_video_parses_a_clip_like_the_cache_it_was_trained_on(extracted, cli, tmp_path):
    from tapos.data import load_annotations

    s = extracted / "s"
    key = next(iter(load_annotations(s / "tapos_annotation.json").split("val")))
    proc = cli("tapos-parse", "video", s / "videos" / f"{key}.mp4", "--model", extracted / "km", "--out", tmp_path / "o")
    res = json.loads((tmp_path / "o/boundaries.json").read_text())
    assert res["extraction"]["weights"] == "random" and res["extraction"]["fps"] == 3.0  # as recorded
    # the same features as the cache's, so the same boundaries as predict on the cache
    cli("tapos-parse", "predict", "--model", extracted / "km", "--features", extracted / "ext.h5", "--out",
        tmp_path / "p.json", "--seconds")
    want = json.loads((tmp_path / "p.json").read_text())[key]
    assert np.allclose(res["boundaries_seconds"], want, atol=1e-6)
    seg = res["segments"]
    assert len(seg) == len(want) + 1 and seg[0]["start"] == 0 and seg[-1]["end"] == pytest.approx(res["duration"])
    assert (tmp_path / "o/timeline.png").is_file()
    assert f"{len(seg)} sub-actions" in proc.stdout
    # other sampling into the same folder: refused without --overwrite, then redone with it
    again = cli("tapos-parse", "video", s / "videos" / f"{key}.mp4", "--model", extracted / "km", "--fps", "2",
                "--out", tmp_path / "o", check=False)
    assert again.returncode == 1 and "--overwrite" in again.stderr
    cli("tapos-parse", "video", s / "videos" / f"{key}.mp4", "--model", extracted / "km", "--fps", "2",
        "--out", tmp_path / "o", "--overwrite")
    assert json.loads((tmp_path / "o/boundaries.json").read_text())["extraction"]["fps"] == 2.0


# embed: the trained label-free parser, with patterns; tsm and kcpd train nothing and go through the
# same predict path as k-means above (kcpd's CLI: test_tsn's label-free test)
@pytest.mark.parametrize("method,options", [("embed", ["--epochs", "2", "--set", "hidden=16", "--set", "dim=8"])])
def test_video_with_a_label_free_parser(method, options, extracted, cli, tmp_path):
    """A label-free parser parses your own video as it parses the cache (embed's codes drawn on
    the timeline as its patterns)."""
    from tapos.data import load_annotations

    s = extracted / "s"
    cli("tapos-parse", "train", "--method", method, "--features", extracted / "ext.h5", "--annotations",
        s / "tapos_annotation.json", "--out", tmp_path / "m", *options)
    key = next(iter(load_annotations(s / "tapos_annotation.json").split("val")))
    cli("tapos-parse", "video", s / "videos" / f"{key}.mp4", "--model", tmp_path / "m", "--out", tmp_path / "o")
    res = json.loads((tmp_path / "o/boundaries.json").read_text())
    cli("tapos-parse", "predict", "--model", tmp_path / "m", "--features", extracted / "ext.h5", "--out",
        tmp_path / "p.json", "--seconds")
    want = json.loads((tmp_path / "p.json").read_text())[key]
    assert res["method"] == method and np.allclose(res["boundaries_seconds"], want, atol=1e-6)
    assert (tmp_path / "o/timeline.png").stat().st_size > 0


def test_video_errors(extracted, trained, cli, tmp_path, make_video):
    s = extracted / "s"
    clip = next((s / "videos").glob("*.mp4"))
    # a model trained on synthetic features cannot parse a video
    p = cli("tapos-parse", "video", clip, "--model", trained / "tp", "--out", tmp_path / "a", check=False)
    assert p.returncode == 1 and "not trained on tapos-extract features" in p.stderr
    # other weights than the training cache's
    w = tmp_path / "w.pth"
    import torch

    from tapos.extract import build_bninception

    torch.save(build_bninception("rgb").state_dict(), w)
    p = cli("tapos-parse", "video", clip, "--model", extracted / "km", "--weights", w, "--out", tmp_path / "b",
            check=False)
    assert p.returncode == 1 and "the model was trained on features from 'random'" in p.stderr
    # too short: one row at 3 rows/s
    short = make_video(tmp_path / "short.mp4", 2, 25)
    p = cli("tapos-parse", "video", short, "--model", extracted / "km", "--out", tmp_path / "c", check=False)
    assert p.returncode == 1 and "parsing needs at least 2" in p.stderr
    p = cli("tapos-parse", "video", tmp_path / "missing.mp4", "--model", extracted / "km", "--out", tmp_path / "d",
            check=False)
    assert p.returncode == 1 and "no such file" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_analyze_a_method_without_a_classifier_uses_a_linear_probe(synth_dir, tmp_path):
    from tapos.parse.analyze import analyze
    from tapos.parse.run import train

    train("kmeans", synth_dir / "features.h5", synth_dir / "tapos_annotation.json", tmp_path / "km",
          overrides={"k": 8}, progress=False)
    a = analyze(tmp_path / "km", synth_dir / "features.h5", synth_dir / "tapos_annotation.json", progress=False,
                truth=synth_dir / "synth_truth.json")
    assert a.patterns == 8 and a.classifier.startswith("logistic regression")
    assert set(a.discriminative["class"]) == set(a.usage.index)
    assert a.segments["correct"].between(0, 1).all()
    # k-means responses: the argmax is the nearest centre, the rows are distributions
    from tapos.data import FeatureReader
    from tapos.parse.checkpoint import load_model

    parser, modality = load_model(tmp_path / "km")
    x = FeatureReader(synth_dir / "features.h5").read(a.segments["key"][0], modality)
    resp = parser.patterns(x)
    assert np.allclose(resp.sum(1), 1) and (resp.argmax(1) == parser.frame_labels(parser.transform(x))).all()
