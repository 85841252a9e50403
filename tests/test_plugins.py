"""Plug-ins: a toy flow method, a toy evaluation protocol and a toy TSN sampling, each one class
plus its registration (docs/extending.md), work end to end through the library and the command
lines that offer the registry's names."""
import contextlib
import json
from dataclasses import replace

import click
import numpy as np
import pytest

from tapos.data import FeatureReader
from tapos.data.annotations import load_annotations
from tapos.data.predictions import save_predictions
from tapos.evaluate import PROTOCOLS, GroundTruth, Protocol, evaluate_tapos, register_protocol
from tapos.evaluate.reference import reference_lines
from tapos.extract import FLOW_METHODS, FlowComputer, FlowMethod, register_flow
from tapos.extract.flow import flow_parameters, quantize
from tapos.tsn import SAMPLINGS, SamplingScheme, register_sampling, train

from test_tsn import FAST, write_toy


@contextlib.contextmanager
def registered(registry, register, cls):
    """``cls`` registered for the test only (the registries are module-wide)."""
    register(cls)
    try:
        yield registry[cls.name]
    finally:
        del registry[cls.name]


class ConstantFlow(FlowMethod):
    """Every pixel moves by (dx, -2): a field whose quantised value is known."""

    name = "toy-constant"
    summary = "a constant field (tests)"
    record = {"implementation": "constant field"}
    DEFAULTS = {"dx": 1.0}

    def pair_function(self, options=None):
        field = np.array([options["dx"], -2.0], np.float32)
        return lambda prev, nxt: np.broadcast_to(field, prev.shape + (2,)).copy()


def test_a_flow_method_plugin_computes_fields_and_extracts_through_the_cli(tmp_path, make_video, cli):
    frames = np.zeros((3, 48, 64), np.uint8)
    with registered(FLOW_METHODS, register_flow, ConstantFlow):
        fields = FlowComputer("toy-constant", threads=1, crop=32, options={"dx": 3}).fields(frames)
        assert fields.shape == (2, 32, 32, 2)
        assert (fields[..., 0] == quantize(np.float32(3.0))).all()
        assert (fields[..., 1] == quantize(np.float32(-2.0))).all()
        params = flow_parameters("toy-constant", {"dx": 3})
        assert params["implementation"] == "constant field" and params["parameters"] == {"dx": 3}

        make_video(tmp_path / "videos" / "clip.mp4", 6, 25.0)
        out = tmp_path / "feats.h5"
        proc = cli("tapos-extract", tmp_path / "videos", out, "--modality", "flow", "--flow", "toy-constant",
                   "--set", "dx=3", "--weights", "random", "--device", "cpu", "--no-progress")
        assert "1 extracted (6 rows)" in proc.stdout
        reader = FeatureReader(out)
        assert reader.settings().flow == "toy-constant"
        assert reader.settings().flow_params["parameters"] == {"dx": 3}
        flow = reader.read("clip", "flow")
        np.testing.assert_allclose(flow, np.broadcast_to(flow[0], flow.shape), atol=1e-5)  # one motion, every row
        bad = cli("tapos-extract", tmp_path / "videos", tmp_path / "x.h5", "--modality", "flow", "--flow", "dis",
                  "--set", "dx=3", "--weights", "random", "--no-progress", check=False)
        assert bad.returncode == 1 and "takes no flow options" in bad.stderr and "toy-constant" in bad.stderr
    unknown = cli("tapos-extract", tmp_path / "videos", out, "--flow", "toy-constant", check=False)
    assert unknown.returncode == 2 and "toy-constant" in unknown.stderr  # gone with its registration


class ShortestSubAction(SamplingScheme):
    """Every snippet in the middle of the shortest annotated sub-action."""

    name = "toy-shortest"
    summary = "the shortest sub-action's middle (tests)"

    def indices(self, num_frames, boundaries, num_segments, new_length, train, rng):
        edges = [0, *[int(b) for b in boundaries], num_frames]
        a, b = min(zip(edges[:-1], edges[1:]), key=lambda e: e[1] - e[0])
        return np.full(num_segments, (a + b) // 2, np.int64)


def test_a_sampling_plugin_places_the_snippets_through_the_library_and_the_cli(tmp_path, cli):
    """The toy's short middle sub-action tells the class: the plug-in's snippets all land in it."""
    feats, ann, _ = write_toy(tmp_path)
    with registered(SAMPLINGS, register_sampling, ShortestSubAction):
        res = train(feats, ann, "toy-shortest", "rgb", progress=False, overrides=FAST)
        assert res["rgb"]["top1"] == 100.0
        out = tmp_path / "run"
        proc = cli("tapos-tsn", "--features", feats, "--annotations", ann, "--sampling", "toy-shortest",
                   "--modality", "rgb", "--out", out, "--epochs", "25", "--set", "lr=0.01", "--set", "dropout=0.0",
                   "--no-progress")
        assert "toy-shortest" in proc.stdout
        doc = json.loads((out / "results.json").read_text())
        assert doc["config"]["sampling"] == "toy-shortest" and doc["results"]["rgb"]["top1"] == 100.0
    uniform = train(feats, ann, "uniform", "rgb", progress=False, overrides=FAST)
    assert uniform["rgb"]["top1"] < 70.0


class WithinOneFrame(Protocol):
    """TAPOS annotations; a boundary counts only within 1 frame."""

    name = "toy-exact"
    title = "EXACT"
    summary = "TAPOS annotations, boundaries within 1 frame (tests)."
    options = (click.option("--split", default="val"),)

    def load(self, path, split="val", **options):
        ann = load_annotations(path)
        return GroundTruth(ann.split(split), ann, ann.split(split))

    def score(self, truth, predictions, **options):
        return replace(evaluate_tapos(truth, predictions, relative=(0.01,), absolute=(1,)), protocol=self.name)


def test_a_protocol_plugin_scores_through_the_library_and_is_a_command(tmp_path, synth_dir, cli):
    ann_path = synth_dir / "tapos_annotation.json"
    val = load_annotations(ann_path).split("val")
    exact = {k: list(i.boundaries) for k, i in val.items()}
    late = {k: [b + 3 for b in i.boundaries] for k, i in val.items()}
    save_predictions(late, tmp_path / "late.json")
    with registered(PROTOCOLS, register_protocol, WithinOneFrame) as protocol:
        assert protocol.score(val, exact).absolute.f1.tolist() == [1.0]
        direct = protocol.score(val, late)
        assert direct.protocol == "toy-exact" and direct.absolute.f1[0] < 0.2  # 3 frames late: mostly missed
        lines = {ln.name: ln for ln in reference_lines("toy-exact", val.values())}
        assert lines["oracle-count"].result.protocol == "toy-exact"

        assert "toy-exact" in cli("tapos-evaluate", "--help").stdout
        proc = cli("tapos-evaluate", "toy-exact", ann_path, tmp_path / "late.json", "--split", "val",
                   "--json", tmp_path / "s.json")
        assert "== EXACT: relative thresholds" in proc.stdout and "reference lines (EXACT protocol)" in proc.stdout
        scores = json.loads((tmp_path / "s.json").read_text())
        assert scores["protocol"] == "toy-exact" and scores["absolute"]["f1"] == direct.absolute.f1.tolist()
        assert scores["relative"]["f1"] == direct.relative.f1.tolist() and "prior-best" in scores["reference"]
    assert cli("tapos-evaluate", "toy-exact", ann_path, tmp_path / "late.json", check=False).returncode == 2


@pytest.mark.parametrize("registry, register, builtin", [(FLOW_METHODS, register_flow, "tvl1"),
                                                          (SAMPLINGS, register_sampling, "parsed"),
                                                          (PROTOCOLS, register_protocol, "gebd")])
def test_a_name_registers_once(registry, register, builtin):
    with pytest.raises(ValueError, match="registered twice"):
        register(type(registry[builtin]))
