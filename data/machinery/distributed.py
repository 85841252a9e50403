"""torchrun support shared by the stages: rank, world size, the device of this process, a barrier."""
from __future__ import annotations

import os
from datetime import timedelta


class Distributed:
    """Reads RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun) and, with more than one process,
    joins the process group: NCCL when this process uses CUDA and ``backend`` is None, else gloo.
    ``device="cuda"`` becomes ``cuda:LOCAL_RANK``."""

    def __init__(self, device: str = "cpu", backend=None, timeout: timedelta = timedelta(hours=2)):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = f"cuda:{self.local_rank}" if device == "cuda" and self.world > 1 else device
        self.active = False
        if self.world > 1:
            import torch
            import torch.distributed as dist

            if self.device.startswith("cuda") and torch.cuda.is_available():
                # this process's GPU becomes current: NCCL and pinned memory use it, not GPU 0
                torch.cuda.set_device(torch.device(self.device))

            if not dist.is_initialized():
                dist.init_process_group(backend or ("nccl" if self.device.startswith("cuda") else "gloo"),
                                        timeout=timeout)
                self.active = True

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def gather(self, obj) -> list:
        """``obj`` of every rank, in rank order, on every rank (a picklable Python object)."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.destroy_process_group()
