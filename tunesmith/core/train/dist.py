"""Ranks, launchers and the few collective operations the trainer needs.

Also the CPU DeepSpeed fix: under torchrun on a machine without GPUs, accelerate's PartialState
finds no device backend when DeepSpeed is on, so it reports one process (world_size 1) although
DeepSpeed itself runs with all of them. Every rank then reads the whole dataset and behaves as the
main process (logs, saves). :func:`fix_cpu_deepspeed_world_size` makes accelerate pick gloo in that
case, so TrainingArguments, the sampler and ``is_main_process`` see the real world.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def context_from_env(launcher: str = "") -> DistContext:
    """Read RANK/LOCAL_RANK/WORLD_SIZE (torchrun) or map SLURM_* to them first (srun).

    >>> context_from_env().world_size >= 1
    True
    """
    if launcher == "slurm" and "SLURM_PROCID" in os.environ:
        _export_slurm_env()
    env = os.environ
    return DistContext(rank=int(env.get("RANK", 0)), local_rank=int(env.get("LOCAL_RANK", 0)),
                       world_size=int(env.get("WORLD_SIZE", 1)),
                       local_world_size=int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", 1))))


def _export_slurm_env() -> None:
    env = os.environ
    env["RANK"] = env["SLURM_PROCID"]
    env["WORLD_SIZE"] = env.get("SLURM_NTASKS", "1")
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    env["LOCAL_WORLD_SIZE"] = env.get("SLURM_NTASKS_PER_NODE", "1").split("(")[0]
    if "MASTER_ADDR" not in env:
        nodes = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST", "")
        addr = "127.0.0.1"
        if nodes:
            try:
                out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                                     check=True, timeout=30)
                addr = out.stdout.split()[0]
            except (OSError, subprocess.SubprocessError, IndexError):
                pass
        env["MASTER_ADDR"] = addr
    env.setdefault("MASTER_PORT", "29500")


def fix_cpu_deepspeed_world_size() -> None:
    """Make accelerate use gloo for DeepSpeed under torchrun when no accelerator is present."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    original = PartialState._prepare_backend
    if getattr(original, "_tunesmith_patched", False):
        return

    def _prepare_backend(self, cpu=False, sagemaker_dp=False, backend=None):
        chosen, kind = original(self, cpu, sagemaker_dp, backend)
        if (kind == DistributedType.NO and not cpu and int(os.environ.get("LOCAL_RANK", -1)) != -1
                and os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"):
            return (backend or "gloo"), DistributedType.MULTI_CPU
        return chosen, kind

    _prepare_backend._tunesmith_patched = True
    PartialState._prepare_backend = _prepare_backend


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is True on at least one (all ranks must call it together)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
