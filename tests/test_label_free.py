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


# The generator's own structure: sub-actions of about a second, a third of TAPOS's (the defaults, in
# seconds, are TAPOS's; test_defaults_count_within_twice_the_truth_on_tapos_structure_at_two_strides).
# Lengths as fractions of the instance parse it.
GENERATOR = {"tsm": {"kernel": 0.2, "min_length": 0.07}, "kcpd": {"span": None, "min_size": 4}, "pa": {"window": 0.12, "min_distance": 0.1},
             "kmeans": {"min_segment": 0.1}, "embed": {"span": None, "kernel": 0.2, "min_length": 0.07}}


@pytest.mark.parametrize("name,options", [("tsm", {}), ("kcpd", {}), ("kcpd", {"kernel": "cosine"}),
                                          ("kcpd", {"kernel": "linear"})])
def test_label_free_options_find_planted_boundaries(name, options, data):
    train, val = data
    parser = get_parser(name, **{**GENERATOR[name], **options})
    parser.fit(train, None, FitOptions(progress=False))  # no selection split
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
    for name, bad, match in (("tsm", {"kernel": 7}, "kernel must be .* an even number of rows"), ("tsm", {"min_length": 0}, "min_length"),
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
    assert bad.returncode == 1 and "an even number of rows" in bad.stderr and "Traceback" not in bad.stderr


def test_kcpd_compact_rows_keep_the_kernel():
    from tapos.parse.kcpd import compact

    x = np.random.default_rng(0).normal(size=(12, 40))
    c = compact(x)
    assert c.shape == (12, 12) and np.allclose(c @ c.T, x @ x.T, atol=1e-9)
    repeated = np.repeat(x[:3], 4, axis=0)  # a singular Gram matrix: kept as it is
    assert compact(repeated).shape == (12, 40)
    assert compact(x[:, :5]).shape == (12, 5)  # D <= T: nothing to gain
    p = get_parser("kcpd", span=None, min_size=4)  # rows: no fit, no rate
    steps = np.repeat(np.random.default_rng(1).normal(size=(3, 80)), 10, axis=0)
    steps += 0.1 * np.random.default_rng(2).normal(size=steps.shape)
    assert p.boundary_rows(steps).tolist() == [10, 20]


# --- defaults on TAPOS's structure (issue #27): few sub-actions in longer instances, at two strides ------

def tapos_like_structure(path, n, seed):
    """``n`` instances shaped like TAPOS's (no real file read): 2-20 s at 25 or 30 fps (median
    about 5 s, 150 frames), 1 + Poisson(0.2 per second) boundaries (median 2, more in longer
    instances), two instances per video, two in five in val."""
    from tapos.data import save_annotations
    from tapos.data.annotations import Instance

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        fps = float(rng.choice([25.0, 30.0]))
        dur = float(np.clip(rng.lognormal(np.log(5.0), 0.5), 2.0, 20.0))
        total = int(round(dur * fps))
        k = 1 + int(rng.poisson(0.2 * dur))
        gap = max(4, total // (4 * (k + 1)))  # no sub-action shorter than a quarter of the mean
        while True:
            cuts = np.sort(rng.choice(np.arange(gap, total - gap), size=k, replace=False))
            if k == 1 or np.diff(cuts).min() >= gap:
                break
        ms = int(round(dur * 1000))
        out.append(Instance(f"vid{i // 2:05d}xyz", f"s{i % 2 + 1:05d}_0_000_{ms // 1000}_{ms % 1000:03d}", 0,
                            "val" if i % 5 < 2 else "train", total, (0, *cuts.tolist(), total), (0.0, dur + 1.0)))
    save_annotations(out, path)
    return path


def write_strided(src, dst, stride):
    """The cache ``src`` (a row per frame) with every ``stride``-th row, at its time ``k * stride / fps``,
    as ``tapos-extract --stride`` writes it."""
    from tapos.data.features import ExtractionSettings, FeatureReader, FeatureWriter

    reader = FeatureReader(src)
    settings = ExtractionSettings(backbone="synthetic", modalities=("rgb", "flow"), stride=stride)
    with FeatureWriter(dst, settings=settings) as writer:
        for key in reader.keys():
            info = reader.info(key)
            index = np.arange(0, info.num_rows, stride)
            writer.write(key, {m: reader.read(key, m)[index] for m in ("rgb", "flow")}, fps=info.fps / stride,
                         num_frames=info.num_frames, frame_index=index, timestamps=index / info.fps,
                         frame_rate=info.fps)
    return dst


@pytest.fixture(scope="module")
def tapos_like(tmp_path_factory):
    from tapos.data.synth import write_dataset

    out = tmp_path_factory.mktemp("tapos_like")
    write_dataset(out, like=[tapos_like_structure(out / "structure.json", 60, seed=0)], features=True,
                  progress=False, seed=0)
    ann = load_annotations(out / "tapos_annotation.json")
    return ann, {1: out / "features.h5", 3: write_strided(out / "features.h5", out / "features_s3.h5", 3)}


@pytest.mark.parametrize("name", ["pa", "tsm", "kcpd", "kmeans", "embed"])
def test_defaults_count_within_twice_the_truth_on_tapos_structure_at_two_strides(name, tapos_like):
    """Without a selection split, on instances of TAPOS's structure (about 150 rows, 2 boundaries,
    camera moves that are not boundaries), every label-free method predicts between half and twice
    the true number of boundaries, at a row per frame and at every third frame, and about as many
    at both strides (their lengths are seconds, not rows). The former defaults, fixed row counts,
    gave 4.3x (pa), 2.8x (tsm) and 25x (k-means, no smoothing) at stride 1."""
    ann, caches = tapos_like
    counts = {}
    for stride, feats in caches.items():
        train, val = FeatureDataset(feats, ann, "train", "rgb+flow"), FeatureDataset(feats, ann, "val", "rgb+flow")
        parser = get_parser(name, **({"epochs": 4, "hidden": 32, "dim": 16, "anchors": 16} if name == "embed" else {}))
        parser.fit(train, None, FitOptions(seed=0, progress=False))
        preds = predict_dataset(parser, val)
        truth = np.mean([len(i.boundaries) for i in val.instances])
        counts[stride] = np.mean([len(v) for v in preds.values()]) / truth
        assert 0.5 < counts[stride] < 2.0, f"{name} at stride {stride}: {counts[stride]:.2f}x the true count"
    assert 1 / 1.5 < counts[1] / counts[3] < 1.5, f"{name}: {counts[1]:.2f}x at stride 1, {counts[3]:.2f}x at stride 3"


def test_lengths_are_seconds_fractions_of_the_instance_or_rows(synth_dir):
    from tapos.parse.lengths import length_rows

    assert length_rows("1.5s", 280, rate=10.0) == 15 and length_rows("1.5s", 93, rate=30.0) == 45
    assert length_rows(" .5 s", 10, least=2, rate=2.0) == 2
    with pytest.raises(TaposError, match="needs the rows' rate"):
        length_rows("1s", 100)  # not fitted: no rate
    assert length_rows(0.1, 280) == 28 and length_rows(0.1, 93) == 9 and length_rows(0.01, 20) == 1
    assert length_rows(5, 280) == 5  # a whole number is rows, as before
    ann = load_annotations(synth_dir / "tapos_annotation.json")
    train = FeatureDataset(synth_dir / "features.h5", ann, "train", "rgb+flow")
    pa = get_parser("pa")
    pa.fit(train, None, FitOptions(progress=False))  # records the rows' rate: the cache's median fps
    assert pa.rate == pytest.approx(np.median([train.reader.info(i.key).fps for i in train.instances]))
    tsm = get_parser("tsm", kernel="1s")
    tsm.rate = 25.0
    assert tsm.kernel_rows(300) == 24 and tsm.kernel_rows(30) == 24  # seconds: not the instance's share
    assert get_parser("tsm", kernel=0.2).kernel_rows(113) == 22 and get_parser("tsm", kernel=0.2).kernel_rows(5) == 2
    assert get_parser("tsm", kernel=12).kernel_rows(500) == 12
    for name, bad in (("pa", {"window": 1.5}), ("pa", {"min_distance": 0}), ("tsm", {"kernel": 1.0}),
                      ("tsm", {"min_length": 2.5}), ("kcpd", {"min_size": 0.0}), ("kmeans", {"min_segment": -1}),
                      ("kcpd", {"penalty_fraction": 1.5}), ("kcpd", {"noise_factor": 0}), ("kcpd", {"max_rows": 1}),
                      ("kcpd", {"span": "-1s"}), ("pa", {"window": "fast"})):
        with pytest.raises(TaposError, match=next(iter(bad))):
            get_parser(name, **bad)


@pytest.mark.parametrize("direct", [True, False])
def test_checkerboard_from_rows_equals_the_matrix(direct, monkeypatch):
    from tapos.parse import tsm

    if not direct:  # the FFT path of long instances
        monkeypatch.setattr(tsm, "DIRECT_WORK", 0)
        monkeypatch.setattr(tsm, "COLUMNS", 3)
    rng = np.random.default_rng(5)
    for T, kernel, taper in ((23, 2, 0.0), (60, 8, 0.5), (90, 30, 1.0), (40, 60, 0.5)):
        x = rng.normal(size=(T, 7))
        x[T // 2:] += 1.5
        assert np.allclose(tsm.checkerboard_from_rows(x, kernel, taper),
                           checkerboard_score(self_similarity(x), kernel, taper), atol=1e-9)
    steps = np.concatenate([np.tile([1.0, 0, 0], (20, 1)), np.tile([0, 1.0, 0], (15, 1))])
    s = tsm.checkerboard_from_rows(steps, 8, 0.5)
    assert int(np.argmax(s)) == 20 and np.all(s[:14] == 0) and np.all(s[27:] == 0)


def test_kcpd_bins_long_instances():
    """An instance longer than max_rows is searched on its rows averaged into max_rows bins; its
    boundaries come back in rows, near where the rows change."""
    rng = np.random.default_rng(3)
    levels = rng.normal(size=(3, 40))
    x = np.concatenate([np.repeat(levels[i:i + 1], n, axis=0) for i, n in enumerate((700, 500, 800))])
    x += 0.3 * rng.normal(size=x.shape)
    got = get_parser("kcpd", max_rows=200, span=None, min_size=4).boundary_rows(x)  # rows: no fit, no rate
    assert len(got) == 2 and np.all(np.abs(got - [700, 1200]) <= 10)
    assert get_parser("kcpd", max_rows=None, span=None, min_size=4).boundary_rows(x).tolist() == [700, 1200]
