"""The TSN on cached features: training, sampling schemes, fusion, the command line."""
import json

import numpy as np
import pytest
import torch

from tapos.data import FeatureWriter, save_annotations
from tapos.data.annotations import Instance
from tapos.data.errors import TaposError
from tapos.tsn import accuracy, fuse, load, train


def write_toy(tmp_path, n_per_class=12, classes=3, dim=16, seed=0):
    """Instances of 100 frames in three sub-actions [0, 60), [60, 70), [70, 100): the first and
    last look the same in every class; only the short middle one tells the class. Uniform test
    snippets (frames 16, 50, 83) never land in it; aligned ones always do."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(2, dim))
    distinct = rng.normal(size=(classes, dim)) * 3
    instances = []
    path = tmp_path / "toy.h5"
    with FeatureWriter(path, modalities=("rgb", "flow")) as w:
        for c in range(classes):
            for i in range(n_per_class):
                subset = "val" if i % 3 == 0 else "train"
                inst = Instance(f"vid{c:02d}{i:03d}xx", "s00001_0_000_4_000", c, subset, 100, (0, 60, 70, 100),
                                (0.0, 5.0))
                x = np.empty((100, dim))
                x[:60], x[60:70], x[70:] = shared[0], distinct[c], shared[1]
                x += rng.normal(scale=0.3, size=x.shape)
                w.write(inst.key, {"rgb": x.astype(np.float32), "flow": (x[:, ::-1] * 0.5).astype(np.float32)},
                        fps=25.0, num_frames=100)
                instances.append(inst)
    ann = tmp_path / "ann.json"
    save_annotations(instances, ann)
    return path, ann, instances


FAST = {"epochs": 25, "lr": 0.01, "dropout": 0.0}


def test_aligned_snippets_find_the_short_sub_action_that_uniform_misses(tmp_path):
    feats, ann, _ = write_toy(tmp_path)
    uniform = train(feats, ann, "uniform", "rgb", progress=False, overrides=FAST)
    aligned = train(feats, ann, "aligned", "rgb", progress=False, overrides=FAST)
    assert aligned["rgb"]["top1"] == 100.0 and aligned["rgb"]["mean_class"] == 100.0
    assert uniform["rgb"]["top1"] < 70.0  # its test snippets never see the telling sub-action


def test_parsed_boundaries_drive_the_snippets(tmp_path):
    feats, ann, instances = write_toy(tmp_path)
    good = {i.key: [60, 70] for i in instances}
    wrong = {i.key: [20, 45] for i in instances}  # segments that miss frames 60-70 at test
    res_good = train(feats, ann, "parsed", "rgb", boundaries=good, progress=False, overrides=FAST)
    res_wrong = train(feats, ann, "parsed", "rgb", boundaries=wrong, progress=False, overrides=FAST)
    assert res_good["rgb"]["top1"] == 100.0 and res_wrong["rgb"]["top1"] < 70.0
    with pytest.raises(TaposError, match="no predicted boundaries .*--split all"):
        train(feats, ann, "parsed", "rgb", boundaries={instances[0].key: [50]}, progress=False, overrides=FAST)
    with pytest.raises(TaposError, match="needs predicted boundaries"):
        train(feats, ann, "parsed", "rgb", progress=False, overrides=FAST)
    with pytest.raises(TaposError, match="TSN: unknown option"):
        train(feats, ann, "uniform", "rgb", progress=False, overrides={"lr_decay": 1})


def test_a_label_free_parser_drives_the_snippets(tmp_path, cli):
    """kcpd, trained on no boundary, finds the short telling sub-action; its predicted boundaries
    (tapos-parse predict --split all) make parsed snippets land in it, where uniform ones do not."""
    feats, ann, _ = write_toy(tmp_path)
    cli("tapos-parse", "train", "--method", "kcpd", "--features", feats, "--annotations", ann, "--out",
        tmp_path / "kcpd")
    cli("tapos-parse", "predict", "--model", tmp_path / "kcpd", "--features", feats, "--annotations", ann,
        "--split", "all", "--out", tmp_path / "kcpd.json")
    bounds = json.loads((tmp_path / "kcpd.json").read_text())  # (tapos-tsn's own CLI: the test below)
    parsed = train(feats, ann, "parsed", "rgb", boundaries=bounds, progress=False, overrides=FAST)
    uniform = train(feats, ann, "uniform", "rgb", progress=False, overrides=FAST)
    assert parsed["rgb"]["top1"] == 100.0 and uniform["rgb"]["top1"] < 70.0


def test_accuracy_and_fusion_by_hand():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 1, 1])
    assert accuracy(scores, labels) == {"top1": 75.0, "mean_class": pytest.approx(100 * (1 + 2 / 3) / 2)}
    rgb = np.array([[0.6, 0.4]])
    flow = np.array([[0.2, 0.8]])
    fused = fuse({"rgb": rgb, "flow": flow}, {"rgb": 1.0, "flow": 1.5})
    np.testing.assert_allclose(fused, [[(0.6 + 1.5 * 0.2) / 2.5, (0.4 + 1.5 * 0.8) / 2.5]])


def test_cli_train_eval_only_and_table(tmp_path, cli):
    feats, ann, _ = write_toy(tmp_path)
    out = tmp_path / "run"
    proc = cli("tapos-tsn", "--features", feats, "--annotations", ann, "--sampling", "aligned", "--modality", "rgb+flow",
               "--out", out, "--epochs", "25", "--set", "lr=0.01", "--set", "dropout=0.0", "--no-progress")
    assert "RGB+Flow Top-1" in proc.stdout and "aligned" in proc.stdout
    res = json.loads((out / "results.json").read_text())["results"]
    assert set(res) == {"rgb", "flow", "rgb+flow"} and res["rgb+flow"]["top1"] == 100.0
    for name in ("config.json", "model.pt", "log.csv", "results.csv", "results.md", "confusion.png", "training.png"):
        assert (out / name).is_file(), name
    blob = torch.load(out / "model.pt", weights_only=True)  # plain tensors and strings
    assert set(blob["models"]) == {"rgb", "flow"}
    models, config = load(out)
    assert config["sampling"] == "aligned" and config["options"]["segments"] == 3
    again = cli("tapos-tsn", "--eval-only", "--model", out, "--features", feats, "--annotations", ann)
    assert again.stdout == proc.stdout  # the same val numbers from the saved model
    table = cli("tapos-tsn", "table", out, out, "--out", tmp_path / "t.md")
    assert "aligned" in table.stdout and (tmp_path / "t.md").read_text().startswith("| sampling")
    bad = cli("tapos-tsn", "--features", feats, "--annotations", ann, "--sampling", "parsed", "--out", out,
              check=False)
    assert bad.returncode == 2 and "--boundaries" in bad.stderr
    bad = cli("tapos-tsn", "--eval-only", "--model", tmp_path / "nothing", "--features", feats, "--annotations", ann,
              check=False)
    assert bad.returncode == 1 and "no such file" in bad.stderr and "Traceback" not in bad.stderr
