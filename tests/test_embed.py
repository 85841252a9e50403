"""embed, the learned label-free parser: a self-supervised encoder finds the planted boundaries,
reads no boundary (random train boundaries give the same model, with use_class too), reads the
class labels only with use_class, saves and loads, and refuses bad options in one line."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from tapos.data import FeatureDataset, TaposError, load_annotations, save_annotations
from tapos.parse import FitOptions, get_parser
from tapos.parse.checkpoint import load_model, save_model
from tapos.parse.embed import info_nce, padded, sample_pairs, sinkhorn

from conftest import with_random_boundaries
from test_label_free import GENERATOR, assert_parses

FAST = {"epochs": 4, "hidden": 32, "dim": 16, "anchors": 16}  # seconds, not minutes


@pytest.fixture(scope="module")
def data(synth_dir):
    ann = load_annotations(synth_dir / "tapos_annotation.json")
    feats = synth_dir / "features.h5"
    return FeatureDataset(feats, ann, "train", "rgb+flow"), FeatureDataset(feats, ann, "val", "rgb+flow")


@pytest.mark.parametrize("options", [{}, {"objective": "contrast"}, {"readout": "tsm"}])
def test_finds_planted_boundaries(options, data):
    train, val = data
    parser = get_parser("embed", **FAST, **GENERATOR["embed"], **options)  # the generator's short sub-actions
    history = parser.fit(train, None, FitOptions(seed=0, progress=False))
    assert len(history) == FAST["epochs"] and all(np.isfinite(r["loss"]) for r in history)
    assert_parses(parser, val, f"embed {options}", ratio=1.5, margin=0.1)


def train_twice(synth_dir, tmp_path, annotation_files, overrides):
    from tapos.parse.run import predict, train

    feats, ann_path = synth_dir / "features.h5", synth_dir / "tapos_annotation.json"
    out = []
    for i, path in enumerate(annotation_files):
        parser, _ = train("embed", feats, path, tmp_path / f"m{i}", seed=0, progress=False, overrides=overrides)
        config = json.loads((tmp_path / f"m{i}/config.json").read_text())
        assert config["selection"]["select_on"] == "none" and "auto" not in config["config"].values()
        out.append((parser.state()["extra"]["model"], predict(tmp_path / f"m{i}", feats, ann_path, "val",
                                                              progress=False)))
    return out


def same(run_a, run_b) -> bool:
    (wa, pa), (wb, pb) = run_a, run_b
    return (wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa) and pa.keys() == pb.keys()
            and all(np.array_equal(pa[k], pb[k]) for k in pa))


def test_random_train_boundaries_give_the_same_model_with_use_class(synth_dir, tmp_path):
    """Default options and selection but use_class (and fewer epochs); the defaults alone are
    checked with the other label-free methods (test_label_free.test_defaults_read_no_boundaries)."""
    ann_path = synth_dir / "tapos_annotation.json"
    other = with_random_boundaries(load_annotations(ann_path), tmp_path / "random_train.json", "train")
    a, b = train_twice(synth_dir, tmp_path, (ann_path, other), {"use_class": True, "epochs": 5})
    assert same(a, b) and sum(len(v) for v in a[1].values()) > 0


def test_use_class_reads_the_labels(synth_dir, tmp_path, data):
    train, _ = data
    plain, with_class = get_parser("embed", **FAST), get_parser("embed", **FAST, use_class=True)
    plain.fit(train, None, FitOptions(seed=0, progress=False))
    history = with_class.fit(train, None, FitOptions(seed=0, progress=False))
    assert "ce" in history[0] and "ce" not in plain.fit(train, None, FitOptions(seed=0, progress=False))[0]
    assert "classifier.weight" in with_class.state()["extra"]["model"]
    assert "classifier.weight" not in plain.state()["extra"]["model"]
    # other class labels, same boundaries: another model (the labels are read)
    ann_path = synth_dir / "tapos_annotation.json"
    ann = load_annotations(ann_path)
    n = max(i.action for i in ann.values()) + 1
    relabelled = [dataclasses.replace(i, action=(i.action + 1) % n) if i.subset == "train" else i for i in ann.values()]
    save_annotations(relabelled, tmp_path / "relabelled.json")
    a, b = train_twice(synth_dir, tmp_path, (ann_path, tmp_path / "relabelled.json"),
                       {**FAST, "use_class": True, "class_weight": 5.0})
    assert not same(a, b)


def test_save_load_round_trip(data, tmp_path):
    train, val = data
    parser = get_parser("embed", **FAST, use_class=True, readout="tsm")
    parser.fit(train, None, FitOptions(seed=0, progress=False))
    save_model(parser, tmp_path, "rgb+flow")
    torch.load(tmp_path / "model.pt", weights_only=True)
    loaded, _ = load_model(tmp_path)
    assert loaded.config == parser.config
    for i in range(4):
        x, fr = val[i]["features"].numpy(), val[i]["frames"].numpy()
        assert np.array_equal(parser.embed(parser.transform(x)), loaded.embed(loaded.transform(x)))
        assert parser.predict(x, fr).tolist() == loaded.predict(x, fr).tolist()


def test_a_row_embeds_the_same_in_a_batch_as_alone():
    p = get_parser("embed", hidden=8, dim=4, conv_kernel=3, dropout=0.0)
    p.dim, p.num_classes = 5, 2
    net = p.build_model().eval()
    xs = [torch.randn(7, 5), torch.randn(3, 5)]
    x, mask = padded(torch.cat(xs), [0, 7, 10])
    z = net(x, mask)
    assert torch.allclose(z[0], net(xs[0]), atol=1e-6) and torch.allclose(z[1, :3], net(xs[1]), atol=1e-6)
    assert torch.all(z[1, 3:] == 0) and torch.allclose(z[0].norm(dim=1), torch.ones(7))


def test_pairs_and_losses():
    torch.manual_seed(0)
    mask = torch.tensor([[True] * 20, [True] * 6 + [False] * 14, [True] + [False] * 19])
    a, p, ok = sample_pairs(mask, 50, 2)
    lengths = mask.sum(1, keepdim=True)
    assert torch.all(a < lengths) and ok[:2].all() and not ok[2].any()
    d = (a - p).abs()[:2]
    assert torch.all((d >= 1) & (d <= 2)) and torch.all(p[:2] < lengths[:2])
    # InfoNCE: a partner identical to its anchor and negatives orthogonal to it: near zero loss
    z = torch.zeros(3, 20, 2)
    z[:, :, 0] = 1.0
    z[:, 10:, :] = torch.tensor([0.0, 1.0])
    near = info_nce(z, mask, torch.tensor([[2]] * 3), torch.tensor([[3]] * 3), torch.ones(3, 1, dtype=torch.bool),
                    gap=8, temperature=0.05)
    assert near < 1e-3
    scores = torch.randn(40, 4)
    scores[:, 0] += 1.0  # one code is everyone's favourite: the balance spreads the rows
    q = sinkhorn(scores, eps=0.05)  # SwAV's 3 iterations: rows are distributions, codes nearly balanced
    assert torch.allclose(q.sum(1), torch.ones(40), atol=1e-4) and q.sum(0).min() > 5
    assert (scores / 0.05).softmax(1).sum(0).min() < 5
    exact = sinkhorn(scores, eps=0.05, iters=200)
    assert torch.allclose(exact.sum(0), torch.full((4,), 10.0), rtol=1e-2)


def test_bad_options_are_one_line_errors():
    for bad, match in (({"readout": "pa"}, "readout must be one of"), ({"objective": "x"}, "objective must be"),
                       ({"hidden": 0}, "hidden must be"), ({"conv_kernel": 2}, "conv_kernel must be an odd"),
                       ({"negative_gap": 2}, "negative_gap .* must exceed"), ({"temperature": 0}, "temperature"),
                       ({"use_class": "yes"}, "use_class must be true or false"),
                       ({"kernel": 7, "readout": "tsm"}, "tsm: kernel must be .* an even number of rows"),
                       ({"cpd_kernel": "poly"}, "kcpd: kernel must be one of"),
                       ({"saliency": "auto"}, "saliency is an option of the tsm readout"),
                       ({"codes": 1.5}, "codes must be a whole number")):
        with pytest.raises(TaposError, match=match):
            get_parser("embed", **bad)
    assert get_parser("embed", saliency="auto", readout="tsm").option("saliency") == 1.0


def test_explicit_dev_selection_tunes_the_readout(synth_dir, tmp_path):
    from tapos.parse.run import train

    _, history = train("embed", synth_dir / "features.h5", synth_dir / "tapos_annotation.json", tmp_path / "m",
                       overrides={**FAST, "penalty_scale": "auto"}, select_on="dev", progress=False)
    config = json.loads((tmp_path / "m/config.json").read_text())
    assert config["selection"]["select_on"] == "dev" and any("tuned_penalty_scale" in r for r in history)
    assert config["config"]["penalty_scale"] in get_parser("embed").TUNABLE["penalty_scale"]
    assert "val_f1_rel" in history[0]


def test_codes_are_patterns_for_analyze(data, synth_dir, tmp_path):
    """With objective=codes each row's code distribution is its pattern response, and the pattern
    labels change exactly at the readout's boundaries; contrast has no patterns to analyse."""
    from tapos.parse.analyze import analyze
    from tapos.parse.segments import change_points

    train, val = data
    parser = get_parser("embed", **FAST)
    parser.fit(train, None, FitOptions(progress=False))
    x = val[0]["features"].numpy()
    resp = parser.patterns(x)
    assert resp.shape == (len(x), parser.config["codes"]) and np.allclose(resp.sum(1), 1, atol=1e-5)
    labels = parser.pattern_labels(x, resp)
    assert set(change_points(labels).tolist()) <= set(parser.boundary_rows(parser.transform(x)).tolist())
    save_model(parser, tmp_path / "codes", "rgb+flow")
    a = analyze(tmp_path / "codes", synth_dir / "features.h5", synth_dir / "tapos_annotation.json", progress=False,
                truth=synth_dir / "synth_truth.json")
    assert 2 <= a.patterns_used <= parser.config["codes"], a.patterns_used
    assert a.recovery["recovered"] >= 1, a.recovery  # a planted shared sub-action found as one shared code
    contrast = get_parser("embed", **{**FAST, "epochs": 1, "objective": "contrast"})
    contrast.fit(train, None, FitOptions(progress=False))
    assert contrast.patterns(x) is None and contrast.pattern_labels(x) is None
    save_model(contrast, tmp_path / "contrast", "rgb+flow")
    with pytest.raises(TaposError, match="learns no sub-action patterns"):
        analyze(tmp_path / "contrast", synth_dir / "features.h5", synth_dir / "tapos_annotation.json",
                progress=False)


def test_cli_train_and_show(synth_dir, tmp_path, cli):
    feats, ann = synth_dir / "features.h5", synth_dir / "tapos_annotation.json"
    proc = cli("tapos-parse", "train", "--method", "embed", "--features", feats, "--annotations", ann, "--out",
               tmp_path / "m", "--epochs", "2", "--set", "use_class=true", "--set", "hidden=32")
    assert "no selection split (--select-on none)" in proc.stdout
    config = json.loads((tmp_path / "m/config.json").read_text())
    assert config["method"] == "embed" and config["config"]["use_class"] is True
    cli("tapos-parse", "show", "--model", tmp_path / "m", "--features", feats, "--annotations", ann, "--out",
        tmp_path / "show.png")
    assert (tmp_path / "show.png").stat().st_size > 0
    listing = cli("tapos-parse", "methods").stdout  # (predict: test_label_free.test_defaults_read_no_boundaries)
    assert "embed (supervision: none; class labels with use_class=true)" in listing
