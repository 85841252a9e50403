"""The label-free parsers (tsm, kcpd, embed, and pa with its default threshold): they find planted
boundaries on real HDF5 caches, read no boundary by default (random train boundaries give the
same model), and the TSM score is the checkerboard kernel it claims to be."""
import json

import numpy as np
import pytest

from tapos.data import FeatureDataset, TaposError, load_annotations
from tapos.parse import PARSERS, FitOptions, get_parser, predict_dataset
from tapos.parse.checkpoint import load_model, save_model
from tapos.parse.tsm import checkerboard_score, kernel_weights, recursive_split, self_similarity

from conftest import with_random_boundaries
from test_parse_methods import chance_f1, tight_f1

LABEL_FREE = ("tsm", "kcpd", "pa", "embed")
FEW_EPOCHS = {"embed": 4}


@pytest.fixture(scope="module")
def data(synth_dir):
    ann = load_annotations(synth_dir / "tapos_annotation.json")
    feats = synth_dir / "features.h5"
    return FeatureDataset(feats, ann, "train", "rgb+flow"), FeatureDataset(feats, ann, "val", "rgb+flow")


def test_supervision_is_declared():
    assert {n for n, c in PARSERS.items() if c.supervision == "none"} >= set(LABEL_FREE)
    assert all(c.supervision in ("none", "class labels", "boundaries") for c in PARSERS.values())
    assert PARSERS["tcn"].supervision == "boundaries" and PARSERS["pa"].DEFAULTS["threshold"] == 0.5


@pytest.mark.parametrize("name,options", [("tsm", {}), ("kcpd", {}), ("kcpd", {"kernel": "cosine"}),
                                          ("kcpd", {"kernel": "linear"})])
def test_default_options_find_planted_boundaries(name, options, data):
    train, val = data
    parser = get_parser(name, **options)
    parser.fit(train, None, FitOptions(progress=False))  # no selection split: what the defaults give
    assert_parses(parser, val, f"{name} {options}", ratio=2, margin=0.2)


def assert_parses(parser, val, what, ratio, margin):
    """``parser`` finds val's planted boundaries: F1 within 2 frames above ``ratio`` x chance and
    chance + ``margin``, with a count of boundaries neither silent nor everywhere."""
    preds = predict_dataset(parser, val)
    instances = {i.key: i for i in val.instances}
    f1, chance = tight_f1(instances, preds), chance_f1(instances, preds)
    assert f1 > ratio * chance and f1 > chance + margin, f"{what}: F1@2 frames {f1:.3f} vs chance {chance:.3f}"
    n_pred = np.mean([len(v) for v in preds.values()])
    n_true = np.mean([len(i.boundaries) for i in val.instances])
    assert 0.5 * n_true < n_pred < 2 * n_true  # neither silent nor boundaries everywhere


def naive_checkerboard(sim, kernel, taper):
    """The score row by row, block by block: the reference the vectorised version must equal."""
    T, h = len(sim), kernel // 2
    w = kernel_weights(kernel, taper)
    out = np.zeros(T)
    for t in range(1, T):
        means = {}
        for name, (rows_a, rows_b) in {"bb": ((-h, 0), (-h, 0)), "aa": ((0, h), (0, h)),
                                       "ba": ((-h, 0), (0, h))}.items():
            num = den = 0.0
            for i in range(*rows_a):
                for j in range(*rows_b):
                    p, q = t + i, t + j
                    if 0 <= p < T and 0 <= q < T:
                        num += w[i + h] * w[j + h] * sim[p, q]
                        den += w[i + h] * w[j + h]
            means[name] = num / den
        out[t] = max(means["bb"] + means["aa"] - 2 * means["ba"], 0.0)
    return out


@pytest.mark.parametrize("kernel,taper", [(2, 0.0), (6, 0.0), (8, 0.5), (30, 1.0)])
def test_vectorised_score_equals_the_naive_loop(kernel, taper):
    x = np.random.default_rng(kernel).normal(size=(23, 5))
    sim = self_similarity(x)
    assert np.allclose(np.diag(sim), 1) and np.allclose(sim, sim.T)
    assert np.allclose(checkerboard_score(sim, kernel, taper), naive_checkerboard(sim, kernel, taper), atol=1e-12)


def test_score_peaks_at_a_change_and_is_zero_inside_a_constant_segment():
    x = np.concatenate([np.tile([1.0, 0, 0], (20, 1)), np.tile([0, 1.0, 0], (15, 1))])
    s = checkerboard_score(self_similarity(x), 8, 0.5)
    assert int(np.argmax(s)) == 20 and np.allclose(s[:14], 0) and np.allclose(s[27:], 0)


@pytest.mark.parametrize("min_length", [1, 3, 7])
def test_recursion_respects_min_length(min_length):
    score = np.random.default_rng(min_length).random(60)
    bounds = recursive_split(score, min_length, threshold=0.0)
    edges = np.concatenate([[0], bounds, [60]])
    assert len(bounds) and np.diff(edges).min() >= min_length
    if min_length == 1:
        assert len(bounds) == 59  # every positive score splits down to single rows
    # the first split is the strongest row that leaves both parts long enough
    allowed = score[min_length:60 - min_length + 1]
    assert score.max() >= score[bounds].max() == allowed.max()
    assert recursive_split(score, min_length, threshold=2.0).size == 0  # nothing salient: no split
    assert recursive_split(score[:2 * min_length - 1], min_length, 0.0).size == 0  # too short to split


def test_bad_options_are_one_line_errors():
    for name, bad, match in (("tsm", {"kernel": 7}, "kernel must be an even"), ("tsm", {"min_length": 0}, "min_length"),
                             ("tsm", {"taper": -1}, "taper"), ("kcpd", {"kernel": "poly"}, "kernel must be one of"),
                             ("kcpd", {"penalty_scale": 0}, "penalty_scale"), ("kcpd", {"n_bkps": -2}, "n_bkps")):
        with pytest.raises(TaposError, match=match):
            get_parser(name, **bad)


def test_kcpd_fixed_number_of_boundaries(data):
    train, val = data
    parser = get_parser("kcpd", n_bkps=3)
    parser.fit(train, None, FitOptions(progress=False))
    for i in range(4):
        x = parser.transform(val[i]["features"].numpy())
        assert len(parser.boundary_rows(x)) == min(3, len(x) // 4 - 1)
    assert parser.boundary_rows(parser.transform(val[0]["features"].numpy()[:7])).size == 0  # too short


@pytest.mark.parametrize("method", LABEL_FREE)
def test_defaults_read_no_boundaries(synth_dir, tmp_path, method):
    from tapos.parse.run import predict, train

    feats, ann_path = synth_dir / "features.h5", synth_dir / "tapos_annotation.json"
    ann = load_annotations(ann_path)
    other = with_random_boundaries(ann, tmp_path / "random_train.json", "train")
    key = next(iter(ann.split("train")))
    assert load_annotations(other)[key].boundaries != ann[key].boundaries
    preds = []
    for i, path in enumerate((ann_path, other)):
        # default options and selection (embed: fewer epochs, which reading boundaries or not does not depend on)
        train(method, feats, path, tmp_path / f"m{i}", seed=0, progress=False, epochs=FEW_EPOCHS.get(method))
        config = json.loads((tmp_path / f"m{i}/config.json").read_text())
        assert config["selection"]["select_on"] == "none" and "auto" not in config["config"].values()
        preds.append(predict(tmp_path / f"m{i}", feats, ann_path, "val", progress=False))
    a, b = preds
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert sum(len(v) for v in a.values()) > 0


def test_explicit_dev_selection_still_tunes(synth_dir, tmp_path):
    from tapos.parse.run import train

    parser, history = train("tsm", synth_dir / "features.h5", synth_dir / "tapos_annotation.json", tmp_path / "m",
                            overrides={"saliency": "auto"}, select_on="dev", progress=False)
    config = json.loads((tmp_path / "m/config.json").read_text())
    assert config["selection"]["select_on"] == "dev" and "tuned_saliency" in history[-1]
    assert config["config"]["saliency"] in PARSERS["tsm"].TUNABLE["saliency"]


@pytest.mark.parametrize("name", ["tsm", "kcpd"])
def test_save_load_round_trip(name, data, tmp_path):
    train, val = data
    parser = get_parser(name)
    parser.fit(train, None, FitOptions(progress=False))
    save_model(parser, tmp_path, "rgb+flow")
    loaded, modality = load_model(tmp_path)
    assert modality == "rgb+flow" and loaded.config == parser.config and np.array_equal(loaded.mean, parser.mean)
    for i in range(3):
        x, fr = val[i]["features"].numpy(), val[i]["frames"].numpy()
        assert parser.predict(x, fr).tolist() == loaded.predict(x, fr).tolist()


def test_cli_train_and_predict_tsm(synth_dir, tmp_path, cli):
    feats, ann = synth_dir / "features.h5", synth_dir / "tapos_annotation.json"
    proc = cli("tapos-parse", "train", "--method", "tsm", "--features", feats, "--annotations", ann, "--out",
               tmp_path / "tsm", "--set", "kernel=12")
    assert "no selection split (--select-on none)" in proc.stdout
    config = json.loads((tmp_path / "tsm/config.json").read_text())
    assert config["selection"]["select_on"] == "none" and config["config"]["kernel"] == 12
    cli("tapos-parse", "predict", "--model", tmp_path / "tsm", "--features", feats, "--annotations", ann,
        "--out", tmp_path / "pred.json")
    pred = json.loads((tmp_path / "pred.json").read_text())
    assert set(pred) == set(load_annotations(ann).split("val")) and any(pred.values())
    listing = cli("tapos-parse", "methods").stdout
    assert "tsm (supervision: none)" in listing and "transparser (supervision: boundaries)" in listing
    bad = cli("tapos-parse", "train", "--method", "tsm", "--features", feats, "--annotations", ann, "--out",
              tmp_path / "bad", "--set", "kernel=5", check=False)
    assert bad.returncode == 1 and "kernel must be an even" in bad.stderr and "Traceback" not in bad.stderr


def test_kcpd_compact_rows_keep_the_kernel():
    from tapos.parse.kcpd import compact

    x = np.random.default_rng(0).normal(size=(12, 40))
    c = compact(x)
    assert c.shape == (12, 12) and np.allclose(c @ c.T, x @ x.T, atol=1e-9)
    repeated = np.repeat(x[:3], 4, axis=0)  # a singular Gram matrix: kept as it is
    assert compact(repeated).shape == (12, 40)
    assert compact(x[:, :5]).shape == (12, 5)  # D <= T: nothing to gain
    p = get_parser("kcpd")
    steps = np.repeat(np.random.default_rng(1).normal(size=(3, 80)), 10, axis=0)
    steps += 0.1 * np.random.default_rng(2).normal(size=steps.shape)
    assert p.boundary_rows(steps).tolist() == [10, 20]
