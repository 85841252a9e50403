"""Held-out selection: the dev split, and training that never reads the reported split."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from tapos.data import TaposError, load_annotations, save_annotations
from tapos.data.annotations import Annotations
from tapos.data.selection import carve_dev, selection

from conftest import with_random_boundaries


def test_dev_is_whole_videos_of_train_chosen_by_their_id(synth_dir):
    ann = load_annotations(synth_dir / "tapos_annotation.json")
    train = ann.split("train")
    rest, dev = carve_dev(train, 0.1)
    assert set(rest) | set(dev) == set(train) and not set(rest) & set(dev)
    assert not {i.youtube_id for i in dev.values()} & {i.youtube_id for i in rest.values()}
    assert 0.1 * len(train) <= len(dev) < 0.1 * len(train) + 3  # whole videos of 3 instances
    # deterministic, and independent of the file's order
    reordered = Annotations(reversed(list(train.values())), train.path)
    assert set(carve_dev(reordered, 0.1)[1]) == set(dev)
    # a larger fraction keeps the videos of a smaller one (the hash orders the videos)
    assert set(dev) <= set(carve_dev(train, 0.3)[1])
    sel = selection(ann, "dev")
    assert set(sel.select) == set(dev) and sel.record()["dev_videos"] == sorted({i.youtube_id for i in dev.values()})
    assert selection(ann, "none").select is None and set(selection(ann, "val").select) == set(ann.split("val"))
    one_video = Annotations([next(iter(train.values()))], train.path)
    with pytest.raises(TaposError, match="a dev split needs two or more"):
        carve_dev(one_video)


@pytest.mark.parametrize("method,overrides", [
    ("transparser", {"epochs": 3, "d_model": 32, "d_phi": 16, "d_ff": 64, "patterns": 8}),  # epochs, min_segment auto
    ("pa", {"threshold": "auto"}),                                  # threshold auto (its default is fixed)
])
def test_training_never_reads_val(synth_dir, tmp_path, method, overrides):
    from tapos.parse.run import predict, train

    feats, ann_path = synth_dir / "features.h5", synth_dir / "tapos_annotation.json"
    ann = load_annotations(ann_path)
    other = with_random_boundaries(ann, tmp_path / "random_val.json", "val")
    assert load_annotations(other)[next(iter(ann.split("val")))].boundaries != \
        ann[next(iter(ann.split("val")))].boundaries
    runs = []
    for i, path in enumerate((ann_path, other)):
        parser, history = train(method, feats, path, tmp_path / f"m{i}", seed=1, overrides=overrides, progress=False,
                                select_on="dev")  # pa is label-free: its default selects on nothing
        runs.append((tmp_path / f"m{i}", history))
    (a, hist_a), (b, hist_b) = runs
    blob_a = torch.load(a / "model.pt", weights_only=True)["state"]
    blob_b = torch.load(b / "model.pt", weights_only=True)["state"]
    assert blob_a["config"] == blob_b["config"] and "auto" not in blob_a["config"].values()
    for k, v in blob_a["extra"].get("model", {}).items():
        assert torch.equal(v, blob_b["extra"]["model"][k]), k
    assert hist_a == [{**r, "seconds": hist_a[i]["seconds"]} for i, r in enumerate(hist_b)]
    pa, pb = predict(a, feats, ann_path, "val", progress=False), predict(b, feats, ann_path, "val", progress=False)
    assert pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)
    config = json.loads((a / "config.json").read_text())
    sel = config["selection"]
    assert sel["select_on"] == "dev" and sel["select_instances"] >= 1 and len(sel["select_keys_sha256"]) == 64
    assert sel["fit_instances"] + sel["select_instances"] == len(ann.split("train"))


@pytest.fixture(scope="module")
def with_test_split(synth_dir, tmp_path_factory):
    """The synthetic annotations with half of the val videos moved to a test split."""
    ann = load_annotations(synth_dir / "tapos_annotation.json")
    val_videos = sorted({i.youtube_id for i in ann.split("val").values()})
    moved = set(val_videos[: len(val_videos) // 2])
    out = tmp_path_factory.mktemp("testsplit") / "ann.json"
    save_annotations([dataclasses.replace(i, subset="test") if i.youtube_id in moved else i for i in ann.values()],
                     out)
    return out


def test_test_split_works_wherever_val_does(synth_dir, with_test_split, tmp_path, cli):
    feats = synth_dir / "features.h5"
    ann = load_annotations(with_test_split)
    test_keys = set(ann.split("test"))
    assert test_keys and ann.split("val")
    cli("tapos-parse", "train", "--method", "kmeans", "--features", feats, "--annotations", with_test_split,
        "--out", tmp_path / "km", "--set", "k=8")
    pred = tmp_path / "test.json"
    cli("tapos-parse", "predict", "--model", tmp_path / "km", "--features", feats, "--annotations", with_test_split,
        "--split", "test", "--out", pred)
    assert set(json.loads(pred.read_text())) == test_keys
    proc = cli("tapos-evaluate", "tapos", with_test_split, pred, "--split", "test", "--json", tmp_path / "e.json")
    assert f"({len(test_keys)} videos)" in proc.stdout and (tmp_path / "e.json").is_file()
    cli("tapos-parse", "analyze", "--model", tmp_path / "km", "--features", feats, "--annotations", with_test_split,
        "--split", "test", "--out", tmp_path / "report")
    assert (tmp_path / "report/index.html").is_file()
    cli("tapos-tsn", "--features", feats, "--annotations", with_test_split, "--split", "test", "--modality", "rgb",
        "--set", "epochs=2", "--out", tmp_path / "tsn", "--no-progress")
    res = json.loads((tmp_path / "tsn/results.json").read_text())
    assert res["config"]["split"] == "test" and (tmp_path / "tsn/test_scores.npz").is_file()
    import numpy as np

    assert set(np.load(tmp_path / "tsn/test_scores.npz")["keys"]) == test_keys


def test_modality_defaults_to_what_the_cache_holds(synth_dir, tmp_path, cli):
    from tapos.data import FeatureReader, FeatureWriter

    ann_path = synth_dir / "tapos_annotation.json"
    with FeatureReader(synth_dir / "features.h5") as both:
        assert both.default_modality() == "rgb+flow"
        rgb_only = tmp_path / "rgb.h5"
        with FeatureWriter(rgb_only, modalities="rgb") as w:
            for key in both.keys():
                info = both.info(key)
                w.write(key, {"rgb": both.read(key, "rgb")}, fps=info.fps, num_frames=info.num_frames,
                        timestamps=both.timestamps(key), frame_rate=info.frame_rate)
    assert FeatureReader(rgb_only).default_modality() == "rgb"
    cli("tapos-parse", "train", "--method", "pa", "--features", rgb_only, "--annotations", ann_path, "--out",
        tmp_path / "pa")
    assert json.loads((tmp_path / "pa/config.json").read_text())["modality"] == "rgb"
    cli("tapos-tsn", "--features", rgb_only, "--annotations", ann_path, "--set", "epochs=1", "--out", tmp_path / "t",
        "--no-progress")
    assert json.loads((tmp_path / "t/results.json").read_text())["config"]["modality"] == "rgb"
