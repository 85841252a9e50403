"""The prior (content-free boundaries) as a parser, as tapos-data uniform-boundaries, and as the
reference lines that tapos-evaluate prints under every score."""
import json

import numpy as np
import pytest

from tapos.data import load_annotations, load_predictions, save_predictions, tapos_to_gebd
from tapos.data.annotations import Instance
from tapos.data.errors import TaposError
from tapos.data.priors import BoundaryPrior, fit_prior, oracle_count_predictions, prior_predictions
from tapos.evaluate import evaluate_gebd, evaluate_tapos
from tapos.evaluate.reference import best_count, reference_lines
from tapos.parse import get_parser
from tapos.tsn import train as train_tsn

from test_tsn import FAST, write_toy


def inst(i, total, bounds, subset="train", action=0, secs=4.0):
    ms = int(round(secs * 1000))
    return Instance(f"vid{i:03d}_abcd", f"s00001_0_000_{ms // 1000}_{ms % 1000:03d}", action, subset, total,
                    (0, *bounds, total), (0.0, secs + 1))


def test_prior_statistics_and_positions():
    train = [inst(0, 100, (50,)), inst(1, 200, (20, 100), action=1), inst(2, 90, (30, 60, 80), action=1),
             inst(3, 40, (10,))]
    p = fit_prior(train)
    # counts 1, 2, 3, 1: median 1.5 and mean 1.75 round to 2; class 1's median 2.5 rounds up to 3
    assert p.counts == {"median": 2, "mean": 2} and p.class_counts == {0: 1, 1: 3}
    assert p.boundaries(inst(9, 300, (), "val")).tolist() == [100.0, 200.0]
    assert fit_prior(train, count="class-median").boundaries(inst(9, 300, (), "val", action=0)).tolist() == [150.0]
    assert fit_prior(train, count="class-median").boundaries(inst(9, 300, (), "val", action=7)).tolist() == \
        [100.0, 200.0]  # an unseen class: the overall median
    assert fit_prior(train, count=3).boundaries(inst(9, 10, (), "val")).tolist() == [2.5, 5.0, 7.5]
    q = fit_prior(train, count=1, positions="quantiles")  # positions 0.5, 0.1, 0.5, 1/3, 2/3, 8/9, 0.25
    assert q.boundaries(inst(9, 1000, (), "val")).tolist() == [500.0]  # their median
    seconds = prior_predictions(p, [inst(9, 300, (), "val", secs=12.0)], seconds=True)
    assert np.allclose(next(iter(seconds.values())), [4.0, 8.0])  # p * duration
    assert BoundaryPrior.from_json(json.loads(json.dumps(q.to_json()))).boundaries(inst(9, 1000, ())).tolist() == \
        [500.0]
    # count "length": a Poisson fit of the count on the log duration (4 s: 1 and 3; 8 s: 5 and 7)
    by_length = [inst(i, 100, tuple(range(10, 10 + 10 * c, 10)), secs=d) for i, (c, d) in
                 enumerate([(1, 4.0), (3, 4.0), (5, 8.0), (7, 8.0)])]
    lp = fit_prior(by_length, count="length")
    a, b = lp.length_model
    assert np.exp(a + b * np.log(4.0)) == pytest.approx(2.0) and np.exp(a + b * np.log(8.0)) == pytest.approx(6.0)
    assert len(lp.boundaries(inst(9, 100, (), "val", secs=8.0))) == 6
    assert len(lp.boundaries(inst(9, 100, (), "val", secs=4.0))) == 2
    assert lp.count_for(duration=None) == lp.counts["median"]  # no duration known: the median
    assert BoundaryPrior.from_json(json.loads(json.dumps(lp.to_json()))).length_model == pytest.approx((a, b))
    with pytest.raises(TaposError, match="count must be one of"):
        fit_prior(train, count="mode")
    with pytest.raises(TaposError, match="no training instances"):
        fit_prior([])


def test_best_count_and_oracle_on_known_answers():
    train = [inst(i, 120, (30, 60, 90)) for i in range(6)]  # three equally spaced boundaries each
    assert best_count(train) == 3
    val = {i.key: i for i in [inst(10, 100, (50,), "val"), inst(11, 90, (30, 60), "val")]}
    oracle = oracle_count_predictions(val.values())
    assert evaluate_tapos(val, oracle).relative.f1.tolist() == [1.0] * 10
    lines = {ln.name: ln for ln in reference_lines("tapos", val.values(), train)}
    assert list(lines) == ["prior", "prior-best", "prior-length", "oracle-count"]
    assert lines["prior"].prior.count_for() == 3 and lines["prior-best"].prior.count_for() == 3
    # 3 predictions each (25, 50, 75 and 22.5, 45, 67.5): at 0.05 only 50 hits, P 1/6, R 1/3
    assert lines["prior"].result.relative.f1[0] == pytest.approx(2 / 9)
    assert [ln.name for ln in reference_lines("tapos", val.values(), None)] == ["oracle-count"]


def test_prior_parser_trains_predicts_and_reloads(tmp_path, synth_dir, cli):
    ann_path, feats = synth_dir / "tapos_annotation.json", synth_dir / "features.h5"
    ann = load_annotations(ann_path)
    out = tmp_path / "prior"
    cli("tapos-parse", "train", "--method", "prior", "--features", feats, "--annotations", ann_path, "--out", out)
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "prior" and config["selection"]["select_on"] == "dev"
    cli("tapos-parse", "predict", "--model", out, "--features", feats, "--annotations", ann_path, "--split", "val",
        "--out", tmp_path / "p.json")
    preds = load_predictions(tmp_path / "p.json")
    dev_videos = set(config["selection"]["dev_videos"])  # the prior reads the fit split only
    fit = [i for i in ann.split("train").values() if i.youtube_id not in dev_videos]
    expected = prior_predictions(fit_prior(fit), ann.split("val").values())
    assert set(preds) == set(expected)
    assert all(np.allclose(preds[k], expected[k]) for k in expected)
    # the same prior without annotations (a cache of your own): the rows' span is the length
    cli("tapos-parse", "predict", "--model", out, "--features", feats, "--out", tmp_path / "all.json")
    everything = load_predictions(tmp_path / "all.json")
    key = next(iter(expected))
    assert np.allclose(everything[key], expected[key])
    # chosen on dev: "auto" scores every candidate count there
    cli("tapos-parse", "train", "--method", "prior", "--features", feats, "--annotations", ann_path, "--out",
        tmp_path / "auto", "--set", "count=auto")
    chosen = json.loads((tmp_path / "auto/config.json").read_text())["config"]["count"]
    assert chosen in get_parser("prior").TUNABLE["count"]
    # count "length" survives saving: the reloaded model predicts the same from each duration
    cli("tapos-parse", "train", "--method", "prior", "--features", feats, "--annotations", ann_path, "--out",
        tmp_path / "length", "--set", "count=length")
    cli("tapos-parse", "predict", "--model", tmp_path / "length", "--features", feats, "--annotations", ann_path,
        "--split", "val", "--out", tmp_path / "pl.json")
    by_length = load_predictions(tmp_path / "pl.json")
    expected = prior_predictions(fit_prior(fit, count="length"), ann.split("val").values())
    assert all(np.allclose(by_length[k], expected[k]) for k in expected)
    bad = cli("tapos-parse", "train", "--method", "prior", "--features", feats, "--annotations", ann_path,
              "--out", tmp_path / "bad", "--set", "count=-2", check=False)
    assert bad.returncode == 1 and "count must be one of" in bad.stderr and "Traceback" not in bad.stderr


def test_uniform_boundaries_is_the_prior_with_a_fixed_count(tmp_path, synth_dir, cli):
    ann_path = synth_dir / "tapos_annotation.json"
    val = load_annotations(ann_path).split("val")
    for flag, seconds in (((), False), (("--seconds",), True)):
        cli("tapos-data", "uniform-boundaries", ann_path, "--segments", "4", "--out", tmp_path / "u.json", *flag)
        got = load_predictions(tmp_path / "u.json")
        want = prior_predictions(BoundaryPrior(count=3), val.values(), seconds)
        assert set(got) == set(want) and all(np.array_equal(got[k], want[k]) for k in want)
    key = next(iter(val))
    assert np.allclose(got[key], np.array([1, 2, 3]) * val[key].duration / 4)


def test_evaluate_prints_reference_lines_and_margins(tmp_path, synth_dir, cli):
    ann_path = synth_dir / "tapos_annotation.json"
    ann = load_annotations(ann_path)
    oracle = oracle_count_predictions(ann.split("val").values())
    save_predictions(oracle, tmp_path / "oracle.json")
    proc = cli("tapos-evaluate", "tapos", ann_path, tmp_path / "oracle.json", "--json", tmp_path / "s.json")
    assert "== reference lines (TAPOS protocol)" in proc.stdout and "method - prior-best" in proc.stdout
    assert "oracle-count: each instance's true count" in proc.stdout and "reads the evaluated split" in proc.stdout
    scores = json.loads((tmp_path / "s.json").read_text())
    ref = scores["reference"]
    assert set(ref) == {"prior", "prior-best", "prior-length", "oracle-count"}
    assert set(scores["margin"]) == {"over_prior", "over_prior-best", "over_prior-length"}
    # the method is the oracle itself: its margin over each prior is the oracle's own
    assert scores["relative"]["avg_f1"] == pytest.approx(ref["oracle-count"]["relative"]["avg_f1"])
    prior = fit_prior(ann.split("train").values())
    direct = evaluate_tapos(ann.split("val"), prior_predictions(prior, ann.split("val").values()))
    assert ref["prior"]["relative"]["avg_f1"] == pytest.approx(float(direct.relative.f1.mean()))
    margin = scores["margin"]["over_prior"]
    assert margin["avg_f1_rel"] == pytest.approx(scores["relative"]["avg_f1"] - ref["prior"]["relative"]["avg_f1"])
    assert set(margin) == {"f1@0.05", "avg_f1_rel", "avg_f1_abs"}
    quiet = cli("tapos-evaluate", "tapos", ann_path, tmp_path / "oracle.json", "--no-reference",
                "--json", tmp_path / "q.json")
    assert "reference lines" not in quiet.stdout and "reference" not in json.loads((tmp_path / "q.json").read_text())


def test_gebd_reference_lines_need_a_train_file(tmp_path, synth_dir, cli):
    ann_path = synth_dir / "tapos_annotation.json"
    ann = load_annotations(ann_path)
    cli("tapos-data", "convert", ann_path, tmp_path / "gt_val.pkl", "--to", "gebd", "--split", "val")
    cli("tapos-data", "convert", ann_path, tmp_path / "gt_train.pkl", "--to", "gebd", "--split", "train")
    cli("tapos-data", "uniform-boundaries", ann_path, "--segments", "3", "--seconds", "--out", tmp_path / "u.json")
    alone = cli("tapos-evaluate", "gebd", tmp_path / "gt_val.pkl", tmp_path / "u.json")
    assert "no prior lines" in alone.stdout and "--prior-from" in alone.stdout and "oracle-count" in alone.stdout
    proc = cli("tapos-evaluate", "gebd", tmp_path / "gt_val.pkl", tmp_path / "u.json", "--prior-from",
               tmp_path / "gt_train.pkl", "--json", tmp_path / "s.json")
    ref = json.loads((tmp_path / "s.json").read_text())["reference"]
    prior = fit_prior(ann.split("train").values())
    videos = {v.key: v for v in tapos_to_gebd(ann.split("val").values())}
    direct = evaluate_gebd(videos, prior_predictions(prior, ann.split("val").values(), seconds=True))
    assert ref["prior"]["relative"]["f1"] == pytest.approx(direct.relative.f1.tolist())
    assert "train split" in proc.stdout
    # the evaluated file itself as the prior's source is allowed, and said
    same = cli("tapos-evaluate", "gebd", tmp_path / "gt_val.pkl", tmp_path / "u.json", "--prior-from",
               tmp_path / "gt_val.pkl")
    assert "warning: the prior reads" in same.stderr
    missing = cli("tapos-evaluate", "gebd", tmp_path / "gt_val.pkl", tmp_path / "u.json", "--prior-from",
                  tmp_path / "nothing.pkl", check=False)
    assert missing.returncode == 1 and "nothing.pkl" in missing.stderr and "Traceback" not in missing.stderr


def test_a_prior_at_the_right_places_drives_parsed_tsn_snippets(tmp_path, cli):
    """On the TSN toy data the telling sub-action is [60, 70) of 100 frames in every instance: the
    prior's quantile positions put a segment there, so parsed snippets classify; equally spaced
    ones (the same count) land at 50 and miss it."""
    feats, ann, _ = write_toy(tmp_path)
    results = {}
    for positions in ("quantiles", "uniform"):
        model = tmp_path / positions
        cli("tapos-parse", "train", "--method", "prior", "--features", feats, "--annotations", ann, "--out", model,
            "--set", f"positions={positions}", "--select-on", "none")
        cli("tapos-parse", "predict", "--model", model, "--features", feats, "--annotations", ann, "--split", "all",
            "--out", tmp_path / f"{positions}.json")
        bounds = load_predictions(tmp_path / f"{positions}.json")
        results[positions] = train_tsn(feats, ann, "parsed", "rgb", boundaries=bounds, progress=False,
                                       overrides=FAST)["rgb"]["top1"]
    assert results["quantiles"] == 100.0 and results["uniform"] < 70.0, results
