"""End-to-end TSN from video frames: BNInception fine-tuned with TSN's recipe (``--input frames``).

Partial BN (every batch norm but the first keeps its ImageNet statistics and affine terms),
dropout before a new classifier, SGD with momentum 0.9 and weight decay 5e-4, TSN's learning-rate
multipliers (first convolution x1 RGB / x5 flow, its bias x2 / x10, other biases x2, no decay on
biases and batch norm), step schedule, gradient clipping, multi-scale crops and flips in training,
25 centre-crop snippets at test. Under ``torchrun`` it trains with DistributedDataParallel (NCCL on
CUDA, gloo on CPU); rank 0 evaluates and writes the outputs.
"""
from __future__ import annotations


import numpy as np
import torch
from torch import nn

from tapos.data.machinery.distributed import Distributed
from tapos.data.machinery.training import Training, train_epochs
from tapos.extract import build_bninception, init_random, input_mean, load_into, resolve_weights

from .model import predict_scores

# TSN's recipe per modality; every field can be overridden with --set.
FRAME_DEFAULTS = {
    "segments": 3,                          # snippets per instance in training
    "test_segments": 25,                    # centre-crop snippets per instance at test (TSN)
    "epochs": {"rgb": 80, "flow": 340},     # TSN's schedules
    "lr_steps": {"rgb": [30, 60], "flow": [190, 300]},
    "lr": {"rgb": 0.001, "flow": 0.005},
    "batch_size": 32,                       # instances per step (over all processes)
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "clip_grad": {"rgb": 20.0, "flow": 40.0},
    "dropout": {"rgb": 0.8, "flow": 0.7},
    "partial_bn": True,
    "weights": "imagenet",                  # imagenet, random or a .pth file (flow: cross-modality init)
    "flow": "dis",                          # optical flow computed on the fly: dis, tvl1, tvl1-torch, farneback
    "flow_options": None,                   # tvl1-torch's parameters over its defaults, e.g. {"warps": 3}
    "workers": 4,                           # DataLoader processes decoding videos
    "fusion": {"rgb": 1.0, "flow": 1.5},
}


def per_modality(value, modality):
    return value[modality] if isinstance(value, dict) else value


class FrameTSN(nn.Module):
    """uint8 snippets ``(B, K, 224, 224, C)`` -> class scores ``(B, classes)`` (average consensus)."""

    def __init__(self, modality: str, num_classes: int, dropout: float, weights="random", partial_bn=True):
        super().__init__()
        self.base = build_bninception(modality)
        state, self.weights = resolve_weights(weights, modality, progress=False)
        if state is None:
            init_random(self.base)
        else:
            load_into(self.base, state, self.weights)
        self.base.last_linear.requires_grad_(False)  # the ImageNet classifier is not used
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.base.last_linear.in_features, num_classes)
        nn.init.normal_(self.fc.weight, 0, 0.001)  # TSN's init of the new classifier
        nn.init.zeros_(self.fc.bias)
        self.register_buffer("mean", input_mean(modality))
        self.partial_bn = partial_bn
        self.bns = [m for m in self.base.modules() if isinstance(m, nn.BatchNorm2d)]
        if partial_bn:
            for bn in self.bns[1:]:
                bn.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.partial_bn:
            for bn in self.bns[1:]:
                bn.eval()  # keep the running statistics of the pretrained network
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k = x.shape[:2]
        x = x.flatten(0, 1).permute(0, 3, 1, 2).float().sub(self.mean)
        feats = self.base.forward_features(x.contiguous(memory_format=torch.channels_last))
        return self.fc(self.dropout(feats)).view(b, k, -1).mean(dim=1)


def optim_groups(model: FrameTSN, modality: str, lr: float, weight_decay: float) -> list:
    """TSN's learning-rate and weight-decay multipliers."""
    first = model.base.conv1_7x7_s2
    flow = modality == "flow"
    bn_params = [p for bn in model.bns for p in bn.parameters() if p.requires_grad]
    seen = {id(first.weight), id(first.bias), *map(id, bn_params)}
    weights, biases = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        (biases if name.endswith("bias") else weights).append(p)
    return [
        {"params": [first.weight], "lr": lr * (5 if flow else 1), "weight_decay": weight_decay},
        {"params": [first.bias], "lr": lr * (10 if flow else 2), "weight_decay": 0.0},
        {"params": weights, "lr": lr, "weight_decay": weight_decay},
        {"params": biases, "lr": lr * 2, "weight_decay": 0.0},
        {"params": bn_params, "lr": lr, "weight_decay": 0.0},
    ]


def _collate(items):
    return (torch.stack([i["frames"] for i in items]), torch.tensor([i["label"] for i in items]),
            [i["key"] for i in items])


def fit(modality: str, train_ds, num_classes: int, cfg: dict, seed: int, dist: Distributed, progress: bool,
        on_epoch) -> FrameTSN:
    torch.manual_seed(seed)
    model = FrameTSN(modality, num_classes, per_modality(cfg["dropout"], modality), cfg["weights"],
                     cfg["partial_bn"]).to(dist.device)
    lr = per_modality(cfg["lr"], modality)
    opt = torch.optim.SGD(optim_groups(model, modality, lr, cfg["weight_decay"]), lr=lr, momentum=cfg["momentum"])
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, per_modality(cfg["lr_steps"], modality), 0.1)
    net = model
    sampler = None
    if dist.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dist.local_rank] if dist.device.startswith("cuda") else None)
        sampler = torch.utils.data.distributed.DistributedSampler(train_ds, shuffle=True, seed=seed)
    per_rank = max(1, cfg["batch_size"] // dist.world)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=per_rank, shuffle=sampler is None, sampler=sampler,
                                         num_workers=cfg["workers"], collate_fn=_collate,
                                         generator=torch.Generator().manual_seed(seed),
                                         pin_memory=dist.device.startswith("cuda"))

    def before_epoch(epoch: int) -> None:
        train_ds.set_epoch(epoch - 1)
        if sampler is not None:
            sampler.set_epoch(epoch - 1)

    def loss(batch) -> dict:
        x, y, _ = batch
        return {"loss": nn.functional.cross_entropy(net(x), y)}

    rank0 = dist.rank == 0
    train_epochs(Training(
        net, opt, per_modality(cfg["epochs"], modality), batches=lambda epoch: loader, losses=loss,
        device=dist.device, weight=lambda batch: len(batch[1]), clip=per_modality(cfg["clip_grad"], modality),
        clip_params=model.parameters, scheduler=sched, before_epoch=before_epoch,
        evaluate=lambda: {"val_top1": np.nan},  # frames TSNs are evaluated once, after training (25 crops)
        row={"modality": modality}, on_epoch=on_epoch if rank0 else None, desc=f"tsn frames {modality}",
        progress=progress and rank0))
    return model


def frame_scores(model: FrameTSN, ds, device: str, workers: int = 0) -> tuple:
    """``(keys, softmax scores (N, C))`` of a frames TSN, one instance per step."""
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=workers, collate_fn=_collate)
    return predict_scores(model, loader, device)
