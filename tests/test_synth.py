"""The synthetic TAPOS-like dataset: format, determinism and the statistics it promises."""
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tapos.data import FeatureReader, TaposError, load_annotations, load_gebd
from tapos.data.clock import boundary_rows
from tapos.data.machinery.ffmpeg import probe
from tapos.data.synth import PRESETS, write_dataset


def test_valid_files_and_statistics(synth_dir):
    ann = load_annotations(synth_dir / "tapos_annotation.json")  # strict loader: every instance valid
    assert len(ann) == 60
    train, val = ann.split("train"), ann.split("val")
    assert len(train) > len(val) > 0
    # instances of one source video stay in one split, as in TAPOS
    assert not {i.youtube_id for i in train.values()} & {i.youtube_id for i in val.values()}
    counts = np.array([i.num_subactions for i in ann.values()])
    assert counts.min() >= 2 and counts.max() <= 9
    per_class = {a: np.mean([i.num_subactions for i in ann.values() if i.action == a]) for a in ann.actions}
    assert max(per_class.values()) - min(per_class.values()) >= 2  # class-dependent counts
    fps = np.array([i.fps for i in ann.values()])
    assert fps.min() > 14 and fps.max() < 31
    lengths = np.concatenate([np.diff(i.substages) for i in ann.values()])
    assert lengths.min() >= 4 and np.std(lengths) > 5  # varied durations
    truth = json.loads((synth_dir / "synth_truth.json").read_text())
    owners = {}
    for c, seq in enumerate(truth["templates"]):
        for p in set(seq):
            owners.setdefault(p, set()).add(c)
    assert any(len(cs) >= 2 for cs in owners.values())  # sub-actions shared across classes
    assert set(truth["segments"]) == set(ann)
    assert all(len(truth["segments"][k]) == ann[k].num_subactions for k in ann)
    gebd = load_gebd(synth_dir / "gebd_annotators.json")
    assert set(gebd) == set(ann) and all(len(v.annotators) == 3 for v in gebd.values())
    k = next(iter(ann))
    np.testing.assert_allclose(gebd[k].annotators[0], ann[k].boundaries_seconds())


def test_features_carry_boundaries_and_classes(synth_dir):
    ann = load_annotations(synth_dir / "tapos_annotation.json")
    reader = FeatureReader(synth_dir / "features.h5")
    assert reader.attrs["schema"] == "tapos-features/1" and reader.attrs["modalities"] == "rgb,flow"
    at_bnd, inside = [], []
    X, y, split = [], [], []
    for key, inst in ann.items():
        info = reader.info(key)
        assert info.num_rows == inst.total_frames and info.dims == {"rgb": 64, "flow": 64}
        x = reader.read(key, "rgb+flow")
        # change score: distance between the means of the 3 rows before and after each row
        score = np.array([np.linalg.norm(x[max(0, t - 3):t].mean(0) - x[t:t + 3].mean(0))
                          for t in range(3, len(x) - 3)])
        sub = inst.substages
        for b in inst.boundaries:
            at_bnd.append(score[b - 3] if 3 <= b < len(x) - 3 else np.nan)
        for s, e in zip(sub[:-1], sub[1:]):
            c = (s + e) // 2
            if 3 <= c < len(x) - 3:
                inside.append(score[c - 3])
        X.append(x.mean(0))
        y.append(inst.action)
        split.append(inst.subset)
    assert np.nanmean(at_bnd) > 1.25 * np.mean(inside)  # boundaries are visible but not trivial
    X, y, split = np.array(X), np.array(y), np.array(split)
    clf = LogisticRegression(max_iter=2000).fit(X[split == "train"], y[split == "train"])
    acc = clf.score(X[split == "val"], y[split == "val"])
    assert acc > 2.0 / len(set(y))  # classes are learnable well above chance


def test_deterministic_for_a_seed(tmp_path, synth_dir):
    write_dataset(tmp_path / "a", n_instances=60, n_classes=5, seed=3, features=True, progress=False)
    assert (tmp_path / "a/tapos_annotation.json").read_bytes() == (synth_dir / "tapos_annotation.json").read_bytes()
    r1, r2 = FeatureReader(tmp_path / "a/features.h5"), FeatureReader(synth_dir / "features.h5")
    assert r1.keys() == r2.keys()
    for k in r1.keys()[:5]:
        np.testing.assert_array_equal(r1.read(k, "rgb+flow"), r2.read(k, "rgb+flow"))
    write_dataset(tmp_path / "b", n_instances=60, n_classes=5, seed=4, progress=False)
    assert (tmp_path / "b/tapos_annotation.json").read_bytes() != (synth_dir / "tapos_annotation.json").read_bytes()


def test_videos_match_annotations(tmp_path):
    paths = write_dataset(tmp_path, n_instances=3, n_classes=2, seed=1, videos=True, progress=False,
                          duration_range=[2.0, 3.0])
    ann = load_annotations(paths["annotations"])
    for key, inst in ann.items():
        info = probe(tmp_path / "videos" / f"{key}.mp4")
        assert (info.width, info.height) == (96, 64)
        assert info.num_frames == inst.total_frames
        assert info.fps == pytest.approx(round(inst.fps), rel=1e-3)
    assert not list((tmp_path / "videos").glob(".*"))  # no temporary files left


def test_unknown_option(tmp_path):
    with pytest.raises(TaposError, match="synthetic dataset: unknown option"):
        write_dataset(tmp_path, n_instances=3, nonsense=1)


def test_source_videos_hold_each_instance_at_its_time(tmp_path):
    from tapos.data.machinery.ffmpeg import read_frames
    from tapos.data.synth import write_dataset

    paths = write_dataset(tmp_path, 5, 2, seed=2, videos=True, sources=True, progress=False, first_shot_max=1.0)
    ann = load_annotations(paths["annotations"])
    by_video = {}
    for inst in ann.values():
        by_video.setdefault(inst.youtube_id, []).append(inst)
    for yid, insts in by_video.items():
        insts.sort(key=lambda i: i.start)
        assert all(a.end <= b.start for a, b in zip(insts, insts[1:]))  # shots follow each other
        src = paths["sources"] / f"{yid}.mp4"
        fps = probe(src).fps
        frames = np.concatenate(list(read_frames(src, 96, 64, "rgb24")))
        for inst in insts:
            clip = np.concatenate(list(read_frames(paths["videos"] / f"{inst.key}.mp4", 96, 64, "rgb24")))
            first = int(round(inst.start * fps))
            diff = np.abs(frames[first:first + len(clip)].astype(int) - clip).mean()
            before = np.abs(frames[first - 1].astype(int) - clip[0]).mean()
            assert len(clip) == inst.total_frames and diff < 4 < before, (inst.key, diff, before)


def test_signature_subactions_are_brief_and_unique_to_their_class():
    from tapos.data.synth import generate

    cfg, world, items = generate(60, 4, seed=1, pool=5, count_jitter=0.0, signature_subactions=1,
                                 signature_share=0.1)
    own = {}
    for c, seq in enumerate(world.templates):
        extra = [p for p in seq if p >= 5]
        assert len(extra) == 1
        own[c] = extra[0]
    assert len(set(own.values())) == 4
    for si in items:
        inst = si.instance
        j = si.protos.index(own[inst.action])
        share = (inst.substages[j + 1] - inst.substages[j]) / inst.total_frames
        assert share < 0.3  # brief (0.1 before per-instance jitter)
    # the shared part of every template is what the same seed gives without signatures
    _, plain, _ = generate(60, 4, seed=1, pool=5, count_jitter=0.0)
    assert [[p for p in seq if p < 5] for seq in world.templates] == plain.templates


def test_the_signature_preset_is_the_tsn_benchmarks_data(tmp_path, cli):
    """`--preset signature` (the TSN benchmark's and `make demo`'s TSN data): every class is a few
    sub-actions from one small shared pool plus a brief one of its own; --instances still overrides."""
    out = tmp_path / "sig"
    cli("tapos-data", "synth", out, "--preset", "signature", "--instances", "24", "--seed", "3")
    truth = json.loads((out / "synth_truth.json").read_text())
    cfg = truth["config"]
    assert cfg["preset"] == "signature" and cfg["instances"] == 24
    assert all(cfg[k] == v for k, v in PRESETS["signature"].items() if k != "instances")
    ann = load_annotations(out / "tapos_annotation.json")
    assert len(ann) == 24
    for key, protos in truth["segments"].items():
        assert sum(p >= cfg["pool"] for p in protos) == 1  # exactly one sub-action of the class's own
        assert 3 <= len(protos) <= 4  # 2-3 shared ones and the signature
    proc = cli("tapos-data", "synth", tmp_path / "x", "--preset", "nonesuch", check=False)
    assert proc.returncode != 0 and "nonesuch" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(TaposError, match="unknown preset"):
        write_dataset(tmp_path / "y", 4, preset="nonesuch")


# --- tapos-data synth --like: synthetic content over the real structure of annotation files ---

def _like_files(tmp_path):
    """A TAPOS-layout file with classes, a GEBD .pkl named 'val' without classes (TAPOS keys, every
    video in one folder, as the real TAPOS GT files) and a GEBD .json naming no split, with
    non-TAPOS keys, two videos per YouTube id and no classes."""
    import pickle

    tapos = {
        "yMK2zxDDs2A": {
            "s00004_0_100_7_931": {"action": 11, "substages": [0, 79, 195], "total_frames": 195,
                                   "shot_timestamps": [43.36, 53.48], "subset": "train"},
            "s00006_2_500_6_500": {"action": 3, "substages": [0, 20, 50, 70, 100], "total_frames": 100,
                                   "shot_timestamps": [60.0, 70.2], "subset": "train"},
        },
        "a_b-c_d-e_f": {"s00012_1_000_11_000": {"action": 20, "substages": [0, 300], "total_frames": 300,
                                                "shot_timestamps": [5.5, 20.0], "subset": "val"}},
    }
    (tmp_path / "tapos.json").write_text(json.dumps(tapos))
    rng = np.random.default_rng(0)
    val, clips = {}, {}
    for i in range(6):
        frames = int(rng.integers(40, 160))
        fps = float(rng.choice([10.0, 29.97, 60.0]))
        duration = round(frames / fps, 3)
        cuts = sorted(rng.choice(np.arange(1, frames), size=int(rng.integers(0, 6)), replace=False).tolist())
        start = 10.0 * i
        val[f"vid{i:02d}_AbCd-_xy_s00002_{int(start)}_000_{start + duration:.3f}".replace(".", "_")] = {
            "num_frames": frames, "fps": frames / duration, "video_duration": duration,
            "path_video": f"/workspace/GEBD/data/TAPOS/videos/vid{i:02d}.mp4",
            "substages_myframeidx": [cuts], "substages_timestamps": [[c * duration / frames for c in cuts]],
            "f1_consis": [1.0], "f1_consis_avg": 1.0}
        clips[f"kin{i}_{i:06d}_{i + 10:06d}"] = {
            "num_frames": frames, "video_duration": duration, "youtube_id": f"yt{i // 2}",
            "substages_myframeidx": [cuts], "substages_timestamps": [[c * duration / frames for c in cuts]]}
    (tmp_path / "tapos_gt_val.pkl").write_bytes(pickle.dumps(val, protocol=4))
    (tmp_path / "clips.json").write_text(json.dumps(clips))
    return [tmp_path / "tapos.json", tmp_path / "tapos_gt_val.pkl", tmp_path / "clips.json"]


def test_like_keeps_the_real_structure(tmp_path, cli):
    from tapos.data import split_key
    from tapos.data.annotations import UNKNOWN_ACTION

    files = _like_files(tmp_path)
    out = tmp_path / "out"
    args = [a for f in files for a in ("--like", f)]
    cli("tapos-data", "synth", out, *args, "--features", "--set", "val_fraction=0.5", "--dim", "8")
    ann = load_annotations(out / "tapos_annotation.json")  # strict loader: every instance valid
    sources = [list(load_annotations(f).values()) for f in files]
    assert all(i.action == UNKNOWN_ACTION for i in sources[1] + sources[2])  # one folder is no class
    assert len(ann) == sum(map(len, sources)) == 15
    got = list(ann.values())  # file order, instance order kept
    for src, inst in zip([i for s in sources for i in s], got):
        assert inst.total_frames == src.total_frames and inst.substages == src.substages
        assert inst.fps == pytest.approx(src.fps, rel=1e-3)
        if src.key in ann:  # TAPOS keys (the TAPOS file, the 'val' GEBD file) are kept, with their shots
            assert inst.key == src.key and inst.shot_timestamps == src.shot_timestamps
    tapos, val, clips = got[:3], got[3:9], got[9:]
    assert [i.action for i in tapos] == [11, 3, 20]  # real class ids kept
    assert [i.subset for i in tapos] == ["train", "train", "val"]
    assert [i.key for i in val] == list(load_annotations(files[1]))
    assert {i.subset for i in val} == {"val"}  # from the file name
    cfg = json.loads((out / "synth_truth.json").read_text())["config"]
    assert cfg["classes"] == 21  # a template for every real class id; drawn classes among --classes (8)
    assert all(0 <= i.action < 8 for i in val + clips)
    # non-TAPOS keys: a made TAPOS instance id from the duration, YouTube id kept, one split per id
    assert [i.youtube_id for i in clips] == [f"yt{k // 2}" for k in range(6)]
    assert all(split_key(i.key) == (i.youtube_id, i.instance_id) for i in clips)
    assert all(i.instance_id.startswith("s0000") and i.shot_timestamps == (0.0, i.duration) for i in clips)
    by_id = {}
    for i in clips:
        by_id.setdefault(i.youtube_id, set()).add(i.subset)
    assert all(len(s) == 1 for s in by_id.values()) and set().union(*by_id.values()) <= {"train", "val"}
    # features: one row per frame of every instance
    reader = FeatureReader(out / "features.h5")
    for key, inst in ann.items():
        info = reader.info(key)
        assert info.num_rows == inst.total_frames and info.dims == {"rgb": 8, "flow": 8}
    # sub-action prototypes: one per segment, consecutive segments never alike
    truth = json.loads((out / "synth_truth.json").read_text())
    for key, inst in ann.items():
        protos = truth["segments"][key]
        assert len(protos) == inst.num_subactions and all(a != b for a, b in zip(protos, protos[1:]))
    gebd = load_gebd(out / "gebd_annotators.json")
    assert set(gebd) == set(ann)


def test_like_classes_drawn_skewed_and_templates_followed(tmp_path):
    from tapos.data.synth import generate

    records = {}
    for i in range(600):
        n = 2 + i % 3
        records[f"v{i:04d}_clip"] = {"num_frames": 20 * n, "video_duration": 0.8 * n,
                                     "substages_timestamps": [[0.8 * k for k in range(1, n)]]}
    path = tmp_path / "clips_train.json"
    path.write_text(json.dumps(records))
    cfg, world, items = generate(seed=1, like=[path], n_classes=5, val_fraction=0.25)
    assert len(items) == 600 and {si.instance.subset for si in items} == {"train"}
    counts = np.bincount([si.instance.action for si in items], minlength=5)
    assert len(counts) == 5 and counts[0] > 4 * counts[4] > 0  # expected ratio 8
    assert np.all(np.diff(counts) < 15)  # sizes fall from the first class to the last
    followed = 0
    for si in items:
        template, K = world.templates[si.instance.action], si.instance.num_subactions
        if K == len(template):
            assert si.protos == template
            followed += 1
        else:  # spread evenly over the template in its order (or cyclically), a repeat replaced
            plan = [template[k * len(template) // K] for k in range(K)] if K < len(template) else \
                [template[k % len(template)] for k in range(K)]
            assert all(p == q or q == plan[k - 1] for k, (p, q) in enumerate(zip(si.protos, plan)))
    assert followed > 0
    again = generate(seed=1, like=[path], n_classes=5, val_fraction=0.25)[2]
    assert [(a.instance, a.protos) for a in again] == [(b.instance, b.protos) for b in items]


def test_like_max_instances_per_file(tmp_path, cli):
    files = _like_files(tmp_path)
    keys_val = list(load_annotations(files[1]))
    cli("tapos-data", "synth", tmp_path / "a", "--like", files[1], "--max-instances", "4",
        "--like", files[2], "--max-instances", "2", "--seed", "5")
    ann = load_annotations(tmp_path / "a/tapos_annotation.json")
    val = [k for k in ann if k in keys_val]
    assert len(ann) == 6 and len(val) == 4
    assert val == [k for k in keys_val if k in val]  # file order kept
    cli("tapos-data", "synth", tmp_path / "b", "--like", files[1], "--max-instances", "4",
        "--like", files[2], "--max-instances", "2", "--seed", "5")
    assert (tmp_path / "a/tapos_annotation.json").read_bytes() == (tmp_path / "b/tapos_annotation.json").read_bytes()
    cli("tapos-data", "synth", tmp_path / "c", "--like", files[1], "--like", files[0], "--max-instances", "2")
    ann = load_annotations(tmp_path / "c/tapos_annotation.json")  # once: for every file
    assert len(ann) == 4 and len([k for k in ann if k in keys_val]) == 2
    cli("tapos-data", "synth", tmp_path / "d", "--like", files[0], "--max-instances", "10")
    assert len(load_annotations(tmp_path / "d/tapos_annotation.json")) == 3  # more than the file has: all


def test_default_generator_unchanged(tmp_path):
    """Without --like the output is byte for byte what it was before --like existed."""
    import hashlib

    write_dataset(tmp_path, n_instances=12, n_classes=3, seed=5, progress=False)
    digest = {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()[:16]
              for n in ("tapos_annotation.json", "synth_truth.json", "gebd_annotators.json")}
    assert digest == {"tapos_annotation.json": "2fb9522bd9ea1b5c", "synth_truth.json": "e887cd282b4e8405",
                      "gebd_annotators.json": "d91ae0caef47011a"}


@pytest.mark.parametrize("extra,message", [
    (["--instances", "5"], "--instances cannot be used with --like"),
    (["--sources"], "shot layout"),
    (["--max-instances", "1", "--max-instances", "2", "--max-instances", "3"], "given 3 times for 2 --like"),
    (["--like", "{tmp}/missing.json"], "missing.json: no such file"),
    (["--like", "{tmp}/broken.pkl"], "broken.pkl"),
    (["--like", "{tmp}/broken.json"], "broken.json: not valid JSON"),
])
def test_like_refusals_are_one_line(tmp_path, cli, extra, message):
    files = _like_files(tmp_path)
    (tmp_path / "broken.pkl").write_bytes(b"\x80\x04not a pickle")
    (tmp_path / "broken.json").write_text("{not json")
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    proc = cli("tapos-data", "synth", tmp_path / "out", "--like", files[0], "--like", files[2], *extra, check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
    proc = cli("tapos-data", "synth", tmp_path / "out", "--max-instances", "3", check=False)
    assert proc.returncode == 1 and "--max-instances needs --like" in proc.stderr


def test_stride_writes_the_cache_a_strided_extraction_gives(tmp_path, synth_dir, cli):
    """``synth --stride 3``: every third frame of the stride-1 content, at its own frame and time,
    and the boundaries land on the same rows as the clock places them on a strided extraction."""
    from tapos.data import FeatureDataset

    cli("tapos-data", "synth", tmp_path, "--instances", "60", "--classes", "5", "--seed", "3", "--features",
        "--stride", "3")
    strided, full = FeatureReader(tmp_path / "features.h5"), FeatureReader(synth_dir / "features.h5")
    assert strided.settings().stride == 3
    ann = load_annotations(tmp_path / "tapos_annotation.json")
    for key in strided.keys()[:5]:
        rows = full.read(key, "rgb+flow")[::3]
        np.testing.assert_array_equal(strided.read(key, "rgb+flow"), rows)
        np.testing.assert_array_equal(strided.frame_index(key), np.arange(0, len(rows) * 3, 3))
        np.testing.assert_allclose(strided.timestamps(key), np.arange(0, len(rows) * 3, 3) / ann[key].fps)
    item = FeatureDataset(tmp_path / "features.h5", ann, "train", "rgb+flow")[0]
    inst = ann[item["key"]]
    assert item["features"].shape[0] == -(-inst.total_frames // 3) and len(item["row_boundaries"]) >= 1
    frames = strided.frame_index(item["key"])
    np.testing.assert_array_equal(item["row_boundaries"].numpy(),
                                  boundary_rows(inst.boundaries, frames))
    bad = cli("tapos-data", "synth", tmp_path / "x", "--instances", "3", "--stride", "0", check=False)
    assert bad.returncode != 0 and "--stride" in bad.stderr and "Traceback" not in bad.stderr


def test_like_signature_takes_the_shortest_real_segment(tmp_path):
    """--preset signature over a real structure: each class's own sub-action is a whole annotated
    segment, the instance's shortest (aligned sampling's case), and a shared one always remains."""
    from tapos.data.synth import generate

    records = {}
    for i in range(60):
        n = 1 + i % 4  # 0..3 internal boundaries, segments of unequal lengths
        cuts = sorted({round(0.3 * k + 0.17 * ((i * k) % 5), 2) for k in range(1, n)})
        records[f"v{i:04d}_clip"] = {"num_frames": 90, "video_duration": 3.0, "substages_timestamps": [cuts]}
    path = tmp_path / "clips_train.json"
    path.write_text(json.dumps(records))
    cfg, world, items = generate(seed=2, like=[path], preset="signature", val_fraction=0.25)
    pool = cfg["pool"]
    seen = 0
    for si in items:
        own = [p for p in si.protos if p >= pool]
        K = si.instance.num_subactions
        assert len(own) == min(cfg["signature_subactions"], K - 1)
        assert all(p == pool + si.instance.action * cfg["signature_subactions"] for p in own)
        lengths = np.diff(si.instance.substages)
        if own:
            k = si.protos.index(own[0])
            assert lengths[k] == lengths.min()
            seen += 1
        assert all(a != b for a, b in zip(si.protos, si.protos[1:]))  # neighbours differ
    assert seen > 30
