"""The count readout: a method's k strongest peaks, k expected for the instance's length from the
fit split's counts (tapos.parse.count)."""
import numpy as np
import pytest

from tapos.data import FeatureDataset, load_annotations
from tapos.parse import FitOptions, get_parser, predict_dataset
from tapos.parse.checkpoint import load_model, save_model
from tapos.parse.count import expected_count, fit_count_model
from tapos.parse.segments import top_peaks


def test_top_peaks_keeps_the_strongest_apart():
    score = np.array([0.0, 0.2, 0.9, 0.3, 0.1, 0.8, 0.85, 0.2, 0.5, 0.0])
    assert top_peaks(score, 2, 1).tolist() == [2, 6]
    assert top_peaks(score, 2, 3).tolist() == [2, 6]  # 5 is within 3 rows of the higher 6
    assert top_peaks(score, 10, 1).tolist() == [2, 6, 8]  # fewer peaks than asked
    assert top_peaks(score, 0, 1).tolist() == []
    assert top_peaks(np.array([1.0, 0.5, 0.2]), 1, 1).tolist() == []  # row 0 is never a boundary


def test_count_model_fits_counts_against_rows(synth_dir):
    ann = load_annotations(synth_dir / "tapos_annotation.json")
    train = FeatureDataset(synth_dir / "features.h5", ann, "train", "rgb")
    model = fit_count_model(train)
    rows = np.array([train.reader.info(i.key).num_rows for i in train.instances])
    counts = np.array([len(i.boundaries) for i in train.instances])
    predicted = np.array([expected_count(model, r) for r in rows])
    assert abs(predicted.mean() - counts.mean()) < 0.5  # a Poisson fit matches the mean count
    assert expected_count(None, 100, fallback=3) == 3


def test_transparser_count_readout(synth_dir, tmp_path):
    ann = load_annotations(synth_dir / "tapos_annotation.json")
    feats = synth_dir / "features.h5"
    train, val = FeatureDataset(feats, ann, "train", "rgb+flow"), FeatureDataset(feats, ann, "val", "rgb+flow")
    parser = get_parser("transparser", boundaries="count", epochs=3, d_model=32, d_phi=16, d_ff=64)
    history = parser.fit(train, val, FitOptions(progress=False))
    assert "tuned_threshold" not in history[-1] and "tuned_min_segment" not in history[-1]  # nothing to tune
    preds = predict_dataset(parser, val)
    for item, inst in zip((val[i] for i in range(len(val))), val.instances):
        k = expected_count(parser.count_model, len(item["features"]))
        assert 0 < len(preds[inst.key]) <= k
    assert np.mean([len(p) for p in preds.values()]) == pytest.approx(
        np.mean([expected_count(parser.count_model, len(val[i]["features"])) for i in range(len(val))]), abs=0.5)
    save_model(parser, tmp_path, "rgb+flow")
    loaded, _ = load_model(tmp_path)
    assert loaded.count_model == pytest.approx(parser.count_model)
    x, fr = val[0]["features"].numpy(), val[0]["frames"].numpy()
    assert loaded.predict(x, fr).tolist() == parser.predict(x, fr).tolist()
