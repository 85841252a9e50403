"""Every parsing method trained on tiny synthetic data finds the planted boundaries far better
than chance; models save, load and predict the same; bad input gets clear errors."""
import numpy as np
import pytest
import torch

from tapos.data import FeatureDataset, TaposError, load_annotations
from tapos.evaluate import evaluate_tapos
from tapos.parse import PARSERS, FitOptions, get_parser, predict_dataset
from tapos.parse.checkpoint import load_model, save_model

QUICK = {  # small models and few epochs: the suite stays fast
    "transparser": {"epochs": 16, "d_model": 64, "d_phi": 32, "d_ff": 128, "min_segment": 3},
    "kmeans": {"k": 16, "min_segment": 3},
    "isba": {"epochs": 8, "k": 16, "hidden": 64},
    "ctm": {"epochs": 8, "hidden": 64},
    "tcn": {"epochs": 10, "hidden": 64},
    "pa": {},
    "tsm": {},
    "kcpd": {},
    "embed": {"epochs": 8, "hidden": 64},
    "prior": {},  # content-free: saved, loaded and predicted like the others, but no planted boundary to find
}
READS_FEATURES = sorted(n for n in QUICK if PARSERS[n].reads_features)


@pytest.fixture(scope="module")
def data(synth_dir):
    ann = load_annotations(synth_dir / "tapos_annotation.json")
    feats = synth_dir / "features.h5"
    return ann, FeatureDataset(feats, ann, "train", "rgb+flow"), FeatureDataset(feats, ann, "val", "rgb+flow")


def tight_f1(instances, preds):
    """F1 within 2 frames: chance (random boundaries) stays low even for dense boundaries."""
    return float(evaluate_tapos(instances, preds, absolute=(2,)).absolute.f1[0])


def chance_f1(instances, preds, seeds=5):
    """Random boundaries, as many per instance as the method predicted."""
    scores = []
    for s in range(seeds):
        rng = np.random.default_rng(s)
        rand = {k: np.sort(rng.integers(1, instances[k].total_frames, size=len(v))) for k, v in preds.items()}
        scores.append(tight_f1(instances, rand))
    return float(np.mean(scores))


@pytest.fixture(scope="module")
def fitted(data):
    _, train, val = data
    out = {}
    for name in PARSERS:
        parser = get_parser(name, **QUICK[name])
        history = parser.fit(train, val, FitOptions(seed=0, progress=False))
        out[name] = (parser, history)
    return out


@pytest.mark.parametrize("name", READS_FEATURES)
def test_finds_planted_boundaries(name, fitted, data):
    ann, _, val = data
    parser, history = fitted[name]
    assert history and "val_f1_rel" in history[-1]
    preds = predict_dataset(parser, val)
    instances = {i.key: i for i in val.instances}
    f1, chance = tight_f1(instances, preds), chance_f1(instances, preds)
    assert f1 > 1.5 * chance and f1 > chance + 0.08, f"{name}: F1@2 frames {f1:.3f} vs chance {chance:.3f}"


@pytest.mark.parametrize("name", sorted(QUICK))
def test_save_load_predict_same(name, fitted, data, tmp_path):
    _, _, val = data
    parser, _ = fitted[name]
    save_model(parser, tmp_path, "rgb+flow")
    blob = torch.load(tmp_path / "model.pt", weights_only=True)  # plain tensors, numbers, strings
    assert blob["state"]["method"] == name
    loaded, modality = load_model(tmp_path)
    assert modality == "rgb+flow"
    for i in range(3):
        item = val[i]
        x, fr = item["features"].numpy(), item["frames"].numpy()
        assert parser.predict(x, fr).tolist() == loaded.predict(x, fr).tolist()


@pytest.mark.parametrize("name", sorted(QUICK))
def test_short_and_mismatched_input(name, fitted):
    parser, _ = fitted[name]
    for T in (1, 2, 3):  # shorter than any receptive field: padded, never an error
        out = parser.predict(np.random.default_rng(0).random((T, parser.dim), dtype=np.float32))
        # rows are frames here, so the clock's halfway rule gives whole frames (the prior places
        # instants at fractions of the length instead)
        whole = np.all(out == np.round(out)) or not PARSERS[name].reads_features
        assert out.dtype == np.float64 and whole and np.all((out > 0) & (out < T))
    with pytest.raises(TaposError, match="expects"):
        parser.predict(np.zeros((10, parser.dim + 1), np.float32))


@pytest.mark.parametrize("name", sorted(QUICK))
def test_patterns_explain_the_boundaries(name, fitted, data):
    """Methods with patterns give per-row distributions whose smoothed argmax changes exactly where
    the predicted boundaries are; the others give None."""
    from tapos.parse.analyze import methods_with_patterns
    from tapos.parse.segments import change_points

    _, _, val = data
    parser, _ = fitted[name]
    x = val[0]["features"].numpy()
    resp = parser.patterns(x)
    if name not in methods_with_patterns():
        assert resp is None and parser.pattern_labels(x) is None
        return
    assert resp.shape[0] == len(x) and np.allclose(resp.sum(1), 1, atol=1e-5) and (resp >= 0).all()
    labels = parser.pattern_labels(x, resp)
    bounds = parser.boundary_rows(parser.transform(x)).tolist()
    if name in ("transparser", "embed"):  # boundaries not from the labels: one pattern per predicted segment
        assert set(change_points(labels).tolist()) <= set(bounds)
        edges = [0, *bounds, len(x)]
        assert all(len(set(labels[a:b])) == 1 for a, b in zip(edges[:-1], edges[1:]))
    else:
        assert change_points(labels).tolist() == bounds
    logits = parser.class_logits(x)
    assert (logits is not None) == (name == "transparser")
    if logits is not None:
        assert logits.shape == (len(x), parser.num_classes)


def test_deterministic_for_a_seed(data):
    _, train, val = data
    runs = []
    for _ in range(2):
        p = get_parser("transparser", **dict(QUICK["transparser"], epochs=2))
        p.fit(train, val, FitOptions(seed=7, progress=False))
        runs.append(p.state()["extra"]["model"])
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k


def test_unknown_options_and_methods():
    with pytest.raises(TaposError, match="unknown option"):
        get_parser("transparser", heads_count=3)
    with pytest.raises(TaposError, match="unknown method"):
        get_parser("nope")


def test_bad_checkpoints(tmp_path):
    with pytest.raises(TaposError, match="no such file"):
        load_model(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"garbage")
    with pytest.raises(TaposError, match="not a loadable tapos model"):
        load_model(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "tapos-parser/1", "x": Evil()}, tmp_path / "model.pt")
    with pytest.raises(TaposError, match="not a loadable tapos model"):
        load_model(tmp_path)
