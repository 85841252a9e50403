"""tapos-parse train / predict and tapos-evaluate from the shell on the synthetic dataset."""
import json

import numpy as np
import pandas as pd
import torch

from tapos.data import FeatureWriter, load_annotations, load_predictions


def test_train_predict_evaluate(synth_dir, tmp_path, cli):
    ann_path, feats = synth_dir / "tapos_annotation.json", synth_dir / "features.h5"
    out = tmp_path / "tp"
    proc = cli("tapos-parse", "train", "--method", "transparser", "--features", feats, "--annotations", ann_path,
               "--out", out, "--epochs", "2", "--modality", "rgb", "--set", "d_model=32", "--set", "min_segment=3")
    assert "best epoch" in proc.stdout
    for name in ("config.json", "model.pt", "log.csv", "training.png"):
        assert (out / name).stat().st_size > 0
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "transparser" and config["modality"] == "rgb" and config["config"]["d_model"] == 32
    log = pd.read_csv(out / "log.csv")
    assert list(log["epoch"]) == [1, 2] and {"global", "local", "val_f1_rel", "val_f1_abs"} <= set(log.columns)
    assert torch.load(out / "model.pt", weights_only=True)["state"]["dim"] == 64

    pred = tmp_path / "pred.json"
    cli("tapos-parse", "predict", "--model", out, "--features", feats, "--annotations", ann_path, "--out", pred)
    ann = load_annotations(ann_path)
    preds = load_predictions(pred)
    assert set(preds) == set(ann.split("val"))
    assert all(np.all((v > 0) & (v < ann[k].total_frames)) and np.all(v == np.round(v)) for k, v in preds.items())
    scores = tmp_path / "scores.json"
    cli("tapos-evaluate", "tapos", ann_path, pred, "--json", scores)
    assert 0 < json.loads(scores.read_text())["relative"]["avg_f1"] <= 1

    sec = tmp_path / "sec.json"
    cli("tapos-parse", "predict", "--model", out, "--features", feats, "--annotations", ann_path, "--out", sec,
        "--seconds")
    key = next(iter(preds))
    np.testing.assert_allclose(load_predictions(sec)[key], preds[key] / ann[key].fps)
    every = tmp_path / "all.json"
    cli("tapos-parse", "predict", "--model", out, "--features", feats, "--out", every)
    assert len(load_predictions(every)) == len(ann)


def test_pa_and_errors(synth_dir, tmp_path, cli):
    ann_path, feats = synth_dir / "tapos_annotation.json", synth_dir / "features.h5"
    cli("tapos-parse", "train", "--method", "pa", "--features", feats, "--annotations", ann_path, "--out",
        tmp_path / "pa", "--modality", "flow")
    # a cache of another width: a one-line error, not a traceback
    other = tmp_path / "other.h5"
    ann = load_annotations(ann_path)
    with FeatureWriter(other, modalities="flow") as w:
        for key, inst in ann.items():
            w.write(key, {"flow": np.ones((inst.total_frames, 5), np.float32)}, fps=inst.fps,
                    num_frames=inst.total_frames)
    proc = cli("tapos-parse", "predict", "--model", tmp_path / "pa", "--features", other, "--annotations", ann_path,
               "--out", tmp_path / "p.json", check=False)
    assert proc.returncode == 1 and "the model expects (T, 64)" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "p.json").exists()
    proc = cli("tapos-parse", "predict", "--model", tmp_path / "pa", "--features", feats, "--annotations", ann_path,
               "--out", tmp_path / "p.json", "--split", "test", check=False)
    assert proc.returncode == 1 and "split 'test' has no instances" in proc.stderr
    proc = cli("tapos-parse", "predict", "--model", tmp_path / "none", "--features", feats, "--out",
               tmp_path / "p.json", check=False)
    assert proc.returncode == 1 and "no such file" in proc.stderr
    proc = cli("tapos-parse", "train", "--method", "tcn", "--features", other, "--annotations", ann_path, "--out",
               tmp_path / "x", "--modality", "rgb", check=False)
    assert proc.returncode == 1 and "no rgb features" in proc.stderr
    proc = cli("tapos-parse", "train", "--method", "tcn", "--features", feats, "--annotations", ann_path, "--out",
               tmp_path / "x", "--set", "wings=2", check=False)
    assert proc.returncode == 2 and "NAME=VALUE" in proc.stderr
    # epochs mean nothing to a method fitted in one go: refused, not ignored
    proc = cli("tapos-parse", "train", "--method", "pa", "--features", feats, "--annotations", ann_path, "--out",
               tmp_path / "y", "--epochs", "3", check=False)
    assert proc.returncode == 1 and "pa is fitted without epochs" in proc.stderr and not (tmp_path / "y").exists()
