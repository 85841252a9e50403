"""The synthetic TAPOS-like dataset: format, determinism and the statistics it promises."""
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tapos.data import FeatureReader, TaposError, load_annotations, load_gebd
from tapos.data.ffmpeg import probe
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
    from tapos.data.ffmpeg import probe, read_frames
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
