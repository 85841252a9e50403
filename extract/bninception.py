"""BNInception (Inception with batch norm), the backbone of TSN and TAPOS.

Written from the layer facts in shared/reference/bninception.md so that the published ImageNet
weights (``bn_inception-52deb4733.pth``) load with ``strict=True``: every convolution and batch
norm is a flat attribute named like its state-dict key, registered in the published key order.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .inputs import IN_CHANNELS

FEATURE_DIM = 1024  # width of the pooled feature of a frame

# name, in, 1x1, (3x3_reduce, 3x3), (double_3x3_reduce, double_3x3_1, double_3x3_2), pool, pool_proj.
# Blocks without a 1x1 branch (3c, 4e) reduce: stride-2 3x3 convolutions and a stride-2 max pool.
_INCEPTION = (
    ("3a", 192, 64, (64, 64), (64, 96, 96), "avg", 32),
    ("3b", 256, 64, (64, 96), (64, 96, 96), "avg", 64),
    ("3c", 320, 0, (128, 160), (64, 96, 96), "max_s2", 0),
    ("4a", 576, 224, (64, 96), (96, 128, 128), "avg", 128),
    ("4b", 576, 192, (96, 128), (96, 128, 128), "avg", 128),
    ("4c", 576, 160, (128, 160), (128, 160, 160), "avg", 128),
    ("4d", 608, 96, (128, 192), (160, 192, 192), "avg", 128),
    ("4e", 608, 0, (128, 192), (192, 256, 256), "max_s2", 0),
    ("5a", 1056, 352, (192, 320), (160, 224, 224), "avg", 128),
    ("5b", 1024, 352, (192, 320), (192, 224, 224), "max", 128),
)


def _pool(kind: str) -> nn.Module:
    # ceil_mode everywhere: the weights come from Caffe, whose pooling rounds up (3c gives 14x14, not 13x13)
    if kind == "avg":
        return nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)
    if kind == "max":
        return nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


class BNInception(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 1000):
        super().__init__()
        self.in_channels = in_channels
        self._stem = ("conv1_7x7_s2", "pool1_3x3_s2", "conv2_3x3_reduce", "conv2_3x3", "pool2_3x3_s2")
        self._conv_bn("conv1_7x7_s2", in_channels, 64, 7, stride=2)
        self.pool1_3x3_s2 = _pool("max_s2")
        self._conv_bn("conv2_3x3_reduce", 64, 64, 1)
        self._conv_bn("conv2_3x3", 64, 192, 3)
        self.pool2_3x3_s2 = _pool("max_s2")
        # per block: the branches as sequences of layer names, concatenated in this order
        self._blocks: list[tuple[str, list[tuple[str, ...]]]] = []
        for name, cin, c1, (r3, c3), (rd, d1, d2), pool, proj in _INCEPTION:
            p = f"inception_{name}_"
            stride = 1 if c1 else 2
            branches = []
            if c1:
                self._conv_bn(p + "1x1", cin, c1, 1)
                branches.append((p + "1x1",))
            self._conv_bn(p + "3x3_reduce", cin, r3, 1)
            self._conv_bn(p + "3x3", r3, c3, 3, stride)
            branches.append((p + "3x3_reduce", p + "3x3"))
            self._conv_bn(p + "double_3x3_reduce", cin, rd, 1)
            self._conv_bn(p + "double_3x3_1", rd, d1, 3)
            self._conv_bn(p + "double_3x3_2", d1, d2, 3, stride)
            branches.append((p + "double_3x3_reduce", p + "double_3x3_1", p + "double_3x3_2"))
            setattr(self, p + "pool", _pool(pool))
            if proj:
                self._conv_bn(p + "pool_proj", cin, proj, 1)
            branches.append((p + "pool", p + "pool_proj") if proj else (p + "pool",))
            # parameter-free tap on the block output (forward hooks, feature inspection)
            setattr(self, p + "output", nn.Identity())
            self._blocks.append((p + "output", branches))
        self.last_linear = nn.Linear(FEATURE_DIM, num_classes)

    def _conv_bn(self, name: str, cin: int, cout: int, k: int, stride: int = 1) -> None:
        setattr(self, name, nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2))
        setattr(self, name + "_bn", nn.BatchNorm2d(cout, eps=1e-5))

    def _layer(self, name: str, x: torch.Tensor) -> torch.Tensor:
        module = getattr(self, name)
        if isinstance(module, nn.Conv2d):
            return F.relu(getattr(self, name + "_bn")(module(x)), inplace=True)
        return module(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 1024): the 7x7 map (for 224 input) averaged over space."""
        for name in self._stem:
            x = self._layer(name, x)
        for output, branches in self._blocks:
            outs = []
            for branch in branches:
                y = x
                for name in branch:
                    y = self._layer(name, y)
                outs.append(y)
            x = getattr(self, output)(torch.cat(outs, 1))
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_linear(self.forward_features(x))


def build_bninception(modality: str = "rgb", num_classes: int = 1000) -> BNInception:
    if modality not in IN_CHANNELS:
        raise ValueError(f"unknown modality {modality!r} (expected one of {', '.join(IN_CHANNELS)})")
    return BNInception(IN_CHANNELS[modality], num_classes)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy in which every ``<conv>`` absorbs its ``<conv>_bn``; the bn becomes Identity."""
    model = copy.deepcopy(model).eval()
    for name, conv in list(model.named_children()):
        bn = getattr(model, name + "_bn", None)
        if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
            continue
        # in float64 so that folding adds no rounding beyond the final cast
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        conv.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
        conv.bias = nn.Parameter(((bias - bn.running_mean.double()) * scale + bn.bias.double()).to(conv.weight.dtype))
        setattr(model, name + "_bn", nn.Identity())
    return model


def cross_modality_init(rgb_state_dict: dict, in_channels: int = 10) -> dict:
    """TSN's flow init from RGB weights: conv1 averaged over its input channels, repeated ``in_channels`` times."""
    state = dict(rgb_state_dict)
    w = state["conv1_7x7_s2.weight"]
    state["conv1_7x7_s2.weight"] = w.mean(1, keepdim=True).repeat(1, in_channels, 1, 1)
    return state
