"""Where BNInception weights come from: ``random`` (seeded), ``imagenet`` (torch hub cache) or a file.

Files are read with ``torch.load(weights_only=True)``, so a pickle that would run code is refused,
and are checked against the architecture before use, so a wrong file fails with one line naming
it instead of a 60-line ``load_state_dict`` report.
"""
from __future__ import annotations

import functools
import hashlib
import pickle
from pathlib import Path

import torch
from torch import nn

from tapos.data.errors import TaposError

from .bninception import IN_CHANNELS, BNInception, cross_modality_init

IMAGENET_URL = "http://data.lip6.fr/cadene/pretrainedmodels/bn_inception-52deb4733.pth"
IMAGENET_FILE = IMAGENET_URL.rsplit("/", 1)[1]
# torch hub's convention: the part of the file name after the last "-" starts the file's sha256
CROSS_MODALITY = " (cross-modality init)"  # suffix of a flow net initialised from RGB weights
IMAGENET_SHA256_PREFIX = IMAGENET_FILE.rsplit("-", 1)[1].split(".")[0]

# TSN / DataParallel checkpoints wrap the keys as module.base_model.<key>
_PREFIXES = ("module.", "base_model.")
_OPTIONAL = "num_batches_tracked"  # buffers the published files predate


class WeightsError(TaposError):
    """Weights that cannot be found, read, or matched to the network."""


def sha256_file(path, n: int | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:n]


@functools.lru_cache(maxsize=None)
def _rgb_shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in BNInception(3).state_dict().items()}


def _names(keys, limit: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")


def _check(state: dict, shapes: dict, source, free: dict | None = None) -> None:
    """Raise WeightsError unless ``state`` has the keys of ``shapes`` (num_batches_tracked optional) and
    their shapes; ``free`` maps a key to the one dimension allowed to differ (conv1 input channels, classes)."""
    missing = [k for k in shapes if k not in state and not k.endswith(_OPTIONAL)]
    unexpected = [k for k in state if k not in shapes]
    if missing or unexpected:
        parts = [f"{len(missing)} missing ({_names(missing)})"] if missing else []
        parts += [f"{len(unexpected)} unexpected ({_names(unexpected)})"] if unexpected else []
        raise WeightsError(f"{source}: keys do not match BNInception: {'; '.join(parts)}")
    free = free or {}
    wrong = []
    for key, value in state.items():
        got, want = tuple(value.shape), shapes[key]
        if len(got) != len(want) or any(g != w and i != free.get(key) for i, (g, w) in enumerate(zip(got, want))):
            wrong.append(f"{key} {list(got)} (expected {list(want)})")
    if wrong:
        raise WeightsError(f"{source}: {len(wrong)} tensors have the wrong shape: {', '.join(wrong[:3])}"
                           + (", ..." if len(wrong) > 3 else ""))


def _normalise(obj, source) -> dict[str, torch.Tensor]:
    """Unwrap a checkpoint, strip DataParallel/TSN prefixes, name the classifier last_linear, check it."""
    if isinstance(obj, dict):
        for entry in ("state_dict", "model"):
            if isinstance(obj.get(entry), dict):
                obj = obj[entry]
                break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{source}: holds no tensors (expected a BNInception state dict)")
    state = {}
    for key, value in obj.items():
        key = str(key)
        while key.startswith(_PREFIXES):
            key = key.split(".", 1)[1]
        if key.startswith("fc."):  # TSN's bn_inception-9f5701afb96c8044.pth
            key = "last_linear." + key[3:]
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{source}: entry {key} is a {type(value).__name__}, not a tensor")
        state[key] = value
    # conv1 may be RGB (3) or flow (10); the classifier may have any number of classes
    _check(state, _rgb_shapes(), source, free={"conv1_7x7_s2.weight": 1, "last_linear.weight": 0, "last_linear.bias": 0})
    if state["last_linear.weight"].shape[0] != state["last_linear.bias"].shape[0]:
        raise WeightsError(f"{source}: last_linear weight and bias disagree on the number of classes")
    return state


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split(". ")[0].split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_state_dict_file(path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        if lines and lines[0].lower().startswith("weights only load failed"):
            # torch explains the refused object (e.g. "unsupported GLOBAL posix.system") on one of its lines
            reason = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[-1])
            raise WeightsError(f"{path}: refused, the file holds objects other than tensors ({reason[:200]})") from None
        raise WeightsError(f"{path}: not a PyTorch weights file ({_first_line(exc)})") from None
    except Exception as exc:  # zip, pickle and EOF errors all mean "not a torch file"
        raise WeightsError(f"{path}: not a PyTorch weights file ({_first_line(exc)})") from None
    return _normalise(obj, path)


def imagenet_cache_path() -> Path:
    """Where torch hub keeps the downloaded ImageNet weights (``<hub dir>/checkpoints/<file>``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


def _load_imagenet(progress: bool) -> tuple[dict[str, torch.Tensor], str]:
    cached = imagenet_cache_path()
    if not cached.is_file():
        try:
            # the result is read again below, through the same checks as any other file
            torch.hub.load_state_dict_from_url(IMAGENET_URL, map_location="cpu", progress=progress,
                                               check_hash=True, weights_only=True)
        except Exception as exc:  # offline (URLError, timeouts), HTTP errors, hash mismatch
            if not cached.is_file():  # otherwise downloaded but unreadable: load_state_dict_file says why
                reason = " ".join(str(exc).split())[:200] or type(exc).__name__
                raise WeightsError(f"cannot download the ImageNet weights {IMAGENET_URL} ({reason}); download it by "
                                   f"hand and pass --weights PATH, or put it at {cached}") from None
    # torch hub checks the hash only when it downloads; check a file found in the cache too
    digest = sha256_file(cached)
    if not digest.startswith(IMAGENET_SHA256_PREFIX):
        raise WeightsError(f"{cached}: sha256 {digest[:12]} does not match {IMAGENET_SHA256_PREFIX} from "
                           f"{IMAGENET_URL}; delete the file to download it again")
    return load_state_dict_file(cached), f"imagenet {IMAGENET_FILE} sha256:{digest[:12]}"


def resolve_weights(spec, modality: str, rgb_fallback: bool = True,
                    progress: bool = True) -> tuple[dict[str, torch.Tensor] | None, str]:
    """``("random" | "imagenet" | path, "rgb" | "flow")`` -> (state dict or None for random, description).

    The description records which weights were used (file name and sha256 prefix). Flow networks
    accept RGB weights through TSN's cross-modality initialisation when ``rgb_fallback`` is set.
    """
    if modality not in IN_CHANNELS:
        raise ValueError(f"unknown modality {modality!r} (expected one of {', '.join(IN_CHANNELS)})")
    if str(spec) == "random":
        return None, "random"
    if str(spec) == "imagenet":
        state, description = _load_imagenet(progress)
        source = imagenet_cache_path()
    else:
        source = Path(spec)
        if not source.is_file():
            raise WeightsError(f"{source}: no such weights file (expected 'imagenet', 'random' or a path)")
        state = load_state_dict_file(source)
        description = f"{source.name} sha256:{sha256_file(source, 12)}"
    have, want = state["conv1_7x7_s2.weight"].shape[1], IN_CHANNELS[modality]
    if have == want:
        return state, description
    if modality == "flow" and have == IN_CHANNELS["rgb"] and rgb_fallback:
        return cross_modality_init(state, want), description + CROSS_MODALITY
    raise WeightsError(f"{source}: conv1 takes {have} input channels but the {modality} network needs {want}")


def weights_spec(description: str | None) -> str | None:
    """The ``--weights`` value that reproduces a description :func:`resolve_weights` recorded
    ("random", "imagenet"), or None when it names a file of the user's (the cross-modality
    suffix is ignored: the same weights give it again)."""
    description = (description or "").replace(CROSS_MODALITY, "")
    if description == "random":
        return "random"
    if description.startswith(f"imagenet {IMAGENET_FILE}"):
        return "imagenet"
    return None


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source="state dict") -> nn.Module:
    """``load_state_dict(strict=True)`` that tolerates only missing num_batches_tracked buffers."""
    own = model.state_dict()
    _check(state, {k: tuple(v.shape) for k, v in own.items()}, source)
    missing = {k: v for k, v in own.items() if k.endswith(_OPTIONAL) and k not in state}
    model.load_state_dict({**missing, **state}, strict=True)
    return model


@torch.no_grad()
def init_random(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded weights, independent of the global RNG, for tests and runs without downloads.

    He-scaled convolutions keep activations in range through the 69 layers; batch-norm statistics
    and affine terms are non-trivial (running_var != 1, running_mean != 0) so that folding them into
    the convolutions is really exercised.
    """
    g = torch.Generator().manual_seed(seed)

    def fill(t: torch.Tensor, values: torch.Tensor) -> None:
        t.copy_(values.to(t.dtype))

    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            gain = 2.0 if isinstance(module, nn.Conv2d) else 1.0
            fill(module.weight, torch.randn(module.weight.shape, generator=g) * (gain / fan_in) ** 0.5)
            if module.bias is not None:
                fill(module.bias, torch.rand(module.bias.shape, generator=g) * 0.2 - 0.1)
        elif isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            fill(module.weight, 0.5 + torch.rand(n, generator=g))
            fill(module.bias, torch.rand(n, generator=g) - 0.5)
            fill(module.running_mean, torch.randn(n, generator=g))
            fill(module.running_var, 0.5 + 1.5 * torch.rand(n, generator=g))
            module.num_batches_tracked.zero_()
    return model
