"""BNInception: published state-dict layout, weight files, BN folding, the extractor's Backbone."""
from __future__ import annotations

import importlib.util
import os
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tapos.data.errors import TaposError
from tapos.extract import weights as W
from tapos.extract.backbone import FLOW_MEAN, RGB_MEAN_BGR, Backbone, input_mean
from tapos.extract.bninception import build_bninception, cross_modality_init, fold_batchnorm
from tapos.extract.weights import (IMAGENET_URL, WeightsError, init_random, load_into, load_state_dict_file,
                                   resolve_weights)

# A copy of shared/reference/bninception_state_dict.tsv, so that the test runs on a clean clone
TSV = Path(__file__).parent / "data" / "bninception_state_dict.tsv"
# Folding changes the rounding of every convolution; differences stay below this fraction of the
# largest output (measured: about 5e-7 on 224x224 inputs with features up to ~1000).
FOLD_RTOL = 1e-5


def _published_layout(column: str) -> list[tuple[str, tuple[int, ...]]]:
    lines = [line.rstrip("\n").split("\t") for line in TSV.read_text().splitlines() if not line.startswith("#")]
    header, rows = lines[0], lines[1:]
    col = header.index(column)
    return [(r[1], () if r[col] == "scalar" else tuple(int(d) for d in r[col].split("x"))) for r in rows]


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Single 224x224 images gain little from a second thread, and on a busy 2-core machine the
    # spinning OpenMP workers made this file 4x slower (61 s instead of 14 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def rgb_model():
    return init_random(build_bninception("rgb"), seed=0).eval()


@pytest.fixture(scope="module")
def image():
    g = torch.Generator().manual_seed(123)
    return torch.randint(0, 256, (1, 3, 224, 224), generator=g).float() - input_mean("rgb")


def _published_state(model) -> dict:
    # the published files predate num_batches_tracked
    return {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


@pytest.mark.parametrize("modality,column", [("rgb", "shape_rgb"), ("flow", "shape_flow")])
def test_state_dict_has_the_published_keys_order_and_shapes(modality, column):
    model = build_bninception(modality)
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == _published_layout(column)
    assert len(got) == 485
    assert sum(p.numel() for p in model.parameters()) == 11_295_240 + (7 * 7 * 64 * 7 if modality == "flow" else 0)


def test_tsv_copy_matches_the_shared_reference():
    shared = Path(__file__).resolve().parents[2] / "shared" / "reference" / TSV.name
    if not shared.is_file():
        pytest.skip(f"{shared} is not present (clean clone); the copy in tests/data is used")
    assert shared.read_bytes() == TSV.read_bytes()


def test_ceil_mode_pooling_gives_the_published_spatial_sizes(rgb_model, image):
    shapes = {}

    def record(block):
        def hook(module, inputs, output):
            shapes[block] = tuple(output.shape[1:])
        return hook

    hooks = [getattr(rgb_model, f"inception_{b}_output").register_forward_hook(record(b)) for b in ("3c", "4e", "5b")]
    try:
        with torch.no_grad():
            logits = rgb_model(image)
    finally:
        for h in hooks:
            h.remove()
    assert shapes == {"3c": (576, 14, 14), "4e": (1056, 7, 7), "5b": (1024, 7, 7)}
    assert logits.shape == (1, 1000)
    # other input sizes pool over whatever map remains
    with torch.no_grad():
        assert rgb_model.forward_features(image[:, :, :160, :192]).shape == (1, 1024)


def test_features_are_finite_and_depend_on_the_input(rgb_model):
    g = torch.Generator().manual_seed(7)
    x = torch.stack([torch.zeros(3, 224, 224), torch.full((3, 224, 224), 255.0),
                     torch.randint(0, 256, (3, 224, 224), generator=g).float()]) - input_mean("rgb")
    with torch.no_grad():
        f = rgb_model.forward_features(x)
    assert torch.isfinite(f).all()
    assert f.std() > 1e-3
    assert (f[0] - f[1]).abs().max() > 1e-3 and (f[1] - f[2]).abs().max() > 1e-3
    # a sane range after 69 layers: neither vanishing nor exploding
    assert 1e-2 < f.abs().mean() < 1e4


@pytest.mark.parametrize("zipfile", [True, False])
def test_published_style_file_loads_strictly(tmp_path, rgb_model, zipfile):
    # the 2017 files use torch's legacy (pre-zip) format
    path = tmp_path / "bn_inception.pth"
    torch.save(_published_state(rgb_model), path, _use_new_zipfile_serialization=zipfile)
    state = load_state_dict_file(path)
    model = load_into(build_bninception("rgb"), state, path)
    for key, value in rgb_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_tsn_checkpoint_with_fc_and_module_prefix_loads(tmp_path, rgb_model):
    state = {"module.base_model." + k.replace("last_linear.", "fc.") if k.startswith("last_linear.") else "module." + k: v
             for k, v in _published_state(rgb_model).items()}
    path = tmp_path / "tsn.pth.tar"
    torch.save({"epoch": 80, "state_dict": state}, path)
    loaded = load_state_dict_file(path)
    assert list(loaded) == list(_published_state(rgb_model))
    load_into(build_bninception("rgb"), loaded, path)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_pickle_that_runs_code_is_refused(tmp_path, how):
    marker, path = tmp_path / "marker", tmp_path / "evil.pth"
    payload = {"conv1_7x7_s2.weight": _RunsCode(marker)}
    if how == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    with pytest.raises(WeightsError, match=f"{path}: refused.*system"):
        load_state_dict_file(path)
    assert not marker.exists()


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, rgb_model):
    state = _published_state(rgb_model)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip" + bytes(range(256)))
    missing_key = tmp_path / "missing.pth"
    torch.save({k: v for k, v in state.items() if k != "inception_4b_3x3.bias"}, missing_key)
    extra_key = tmp_path / "extra.pth"
    torch.save({**state, "aux_logits.weight": torch.zeros(3)}, extra_key)
    wrong_shape = tmp_path / "shape.pth"
    torch.save({**state, "inception_3a_1x1.weight": torch.zeros(64, 192, 3, 3)}, wrong_shape)
    no_tensors = tmp_path / "empty.pth"
    torch.save({"epoch": 3, "arch": "BNInception"}, no_tensors)
    cases = {
        tmp_path / "absent.pth": "no such weights file",
        corrupt: "not a PyTorch weights file",
        missing_key: r"1 missing \(inception_4b_3x3.bias\)",
        extra_key: r"1 unexpected \(aux_logits.weight\)",
        wrong_shape: r"inception_3a_1x1.weight \[64, 192, 3, 3\] \(expected \[64, 192, 1, 1\]\)",
        no_tensors: "holds no tensors",
    }
    for path, message in cases.items():
        with pytest.raises(WeightsError, match=message) as info:
            load_state_dict_file(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
        assert isinstance(info.value, TaposError)


def test_load_into_tolerates_only_missing_num_batches_tracked(rgb_model):
    state = _published_state(rgb_model)
    load_into(build_bninception("rgb"), state)
    with pytest.raises(WeightsError, match=r"x.pth: keys do not match BNInception: 4 missing \(inception_5b_pool_proj_bn.bias, "):
        load_into(build_bninception("rgb"), {k: v for k, v in state.items() if "5b_pool_proj_bn" not in k}, "x.pth")
    with pytest.raises(WeightsError, match="conv1_7x7_s2.weight"):
        load_into(build_bninception("flow"), state)


def test_folding_batchnorm_keeps_the_outputs(rgb_model, image):
    folded = fold_batchnorm(rgb_model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in rgb_model.modules())  # the original is untouched
    # the statistics are far from the identity, so folding changes the convolutions a lot
    assert not torch.allclose(folded.conv1_7x7_s2.weight, rgb_model.conv1_7x7_s2.weight, rtol=0.1)
    with torch.no_grad():
        assert _max_rel(folded(image), rgb_model(image)) < FOLD_RTOL


def test_backbone_channels_last_folded_matches_the_eager_model(rgb_model):
    frames = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    backbone = Backbone("rgb", "random", fold=True, channels_last=True)
    assert backbone.description == "random" and backbone.feature_dim == 1024
    got = backbone(frames)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() - torch.tensor(RGB_MEAN_BGR).view(1, 3, 1, 1)
    with torch.no_grad():
        want = rgb_model.forward_features(x.contiguous())
    assert got.dtype == np.float32 and got.shape == (1, 1024)
    assert _max_rel(torch.from_numpy(got), want) < FOLD_RTOL
    # tensors and strided views (a BGR<->RGB flip) are accepted
    np.testing.assert_array_equal(backbone(torch.from_numpy(frames)), got)
    assert backbone(frames[..., ::-1]).shape == (1, 1024)


def test_backbone_rejects_bad_input_and_cpu_half_precision():
    backbone = Backbone("flow", "random")
    assert torch.equal(input_mean("flow"), torch.full((1, 10, 1, 1), float(FLOW_MEAN)))
    assert backbone(np.zeros((0, 224, 224, 10), np.uint8)).shape == (0, 1024)
    for bad in (np.zeros((1, 224, 224, 3), np.uint8), np.zeros((1, 224, 224, 10), np.float32),
                np.zeros((224, 224, 10), np.uint8), np.zeros((1, 16, 16, 10), np.uint8), [[0]]):
        with pytest.raises(ValueError, match="expected"):
            backbone(bad)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        Backbone("rgb", precision="fp16")


def test_cross_modality_init(rgb_model):
    rgb = rgb_model.state_dict()
    flow = cross_modality_init(rgb)
    assert list(flow) == list(rgb)
    w = flow["conv1_7x7_s2.weight"]
    assert w.shape == (64, 10, 7, 7)
    for c in range(10):
        torch.testing.assert_close(w[:, c], rgb["conv1_7x7_s2.weight"].mean(1), rtol=0, atol=0)
    assert all(torch.equal(flow[k], rgb[k]) for k in rgb if k != "conv1_7x7_s2.weight")
    model = load_into(build_bninception("flow"), flow).eval()
    with torch.no_grad():
        out = model.forward_features(torch.randn(1, 10, 224, 224, generator=torch.Generator().manual_seed(1)) * 50)
    assert out.shape == (1, 1024) and torch.isfinite(out).all()


def test_init_random_is_deterministic_and_ignores_the_global_rng():
    model = build_bninception("rgb")
    torch.manual_seed(1)
    a = {k: v.clone() for k, v in init_random(model, seed=0).state_dict().items()}
    c = {k: v.clone() for k, v in init_random(model, seed=1).state_dict().items()}
    torch.manual_seed(2)
    torch.rand(10)
    b = init_random(model, seed=0).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1_7x7_s2.weight"], c["conv1_7x7_s2.weight"])
    var = a["inception_3a_1x1_bn.running_var"]
    assert (var > 0).all() and not torch.allclose(var, torch.ones_like(var))


def test_resolve_weights_from_files_and_modalities(tmp_path, rgb_model):
    rgb_path, flow_path = tmp_path / "rgb.pth", tmp_path / "flow.pth"
    torch.save(_published_state(rgb_model), rgb_path)
    torch.save(cross_modality_init(_published_state(rgb_model)), flow_path)
    assert resolve_weights("random", "flow") == (None, "random")

    state, description = resolve_weights(str(rgb_path), "rgb")
    assert description == f"rgb.pth sha256:{W.sha256_file(rgb_path)[:12]}"
    state, description = resolve_weights(rgb_path, "flow")
    assert state["conv1_7x7_s2.weight"].shape == (64, 10, 7, 7) and description.endswith("(cross-modality init)")
    state, description = resolve_weights(flow_path, "flow")
    assert state["conv1_7x7_s2.weight"].shape == (64, 10, 7, 7) and "cross-modality" not in description

    with pytest.raises(WeightsError, match="flow.pth: conv1 takes 10 input channels but the rgb network needs 3"):
        resolve_weights(flow_path, "rgb")
    with pytest.raises(WeightsError, match="rgb.pth: conv1 takes 3"):
        resolve_weights(rgb_path, "flow", rgb_fallback=False)
    with pytest.raises(WeightsError, match="no such weights file"):
        resolve_weights(tmp_path / "nope.pth", "rgb")
    assert Backbone("flow", rgb_path).description.endswith("(cross-modality init)")


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


def test_imagenet_offline_says_how_to_get_the_file(empty_hub, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as info:
        resolve_weights("imagenet", "rgb")
    message = str(info.value)
    assert IMAGENET_URL in message and "--weights PATH" in message and "name resolution" in message
    assert str(empty_hub / "checkpoints" / "bn_inception-52deb4733.pth") in message


def test_imagenet_uses_the_hub_cache(empty_hub, monkeypatch, rgb_model):
    def no_download(*args, **kwargs):
        raise AssertionError("should not download when the cache has the file")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    cached = empty_hub / "checkpoints" / "bn_inception-52deb4733.pth"
    cached.parent.mkdir(parents=True)
    torch.save(_published_state(rgb_model), cached)
    # a stand-in file cannot carry the real hash, so it is refused ...
    with pytest.raises(WeightsError, match="does not match 52deb4733.*delete the file"):
        resolve_weights("imagenet", "rgb")
    # ... and used once its hash is the expected one
    monkeypatch.setattr(W, "IMAGENET_SHA256_PREFIX", W.sha256_file(cached)[:9])
    state, description = resolve_weights("imagenet", "flow")
    assert description.startswith("imagenet bn_inception-52deb4733.pth sha256:") and "cross-modality" in description
    assert state["conv1_7x7_s2.weight"].shape == (64, 10, 7, 7)


def test_parity_with_an_independent_implementation(rgb_model, image):
    reference = os.environ.get("TAPOS_REFERENCE_BNINCEPTION")
    if not reference or not Path(reference).is_file():
        pytest.skip("set TAPOS_REFERENCE_BNINCEPTION to pretrainedmodels-0.7.4's pretrainedmodels/models/bninception.py")
    spec = importlib.util.spec_from_file_location("reference_bninception", reference)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    theirs = module.BNInception(num_classes=1000)
    theirs.load_state_dict(rgb_model.state_dict(), strict=True)
    theirs.eval()
    with torch.no_grad():
        want, got = theirs(image.clone()), rgb_model(image.clone())
    assert _max_rel(got, want) < 1e-4
