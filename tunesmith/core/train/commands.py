"""Build the exact command that starts a trainer: plain python, torchrun, or srun.

Pure functions of the RunConfig (plus a free port when none is fixed), so `--print-command`, the
GUI and the launcher all show and run the same argument list.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from pathlib import Path

from tunesmith.core.config import RunConfig

ENTRY_MODULE = "tunesmith.core.train.entry"


def resolve_launcher(cfg: RunConfig) -> str:
    """'auto' becomes python for one process and torchrun for several.

    >>> cfg = RunConfig(); cfg.distributed.nproc_per_node = 2
    >>> resolve_launcher(cfg)
    'torchrun'
    """
    launcher = cfg.distributed.launcher
    if launcher == "auto":
        # DeepSpeed needs the torch.distributed environment torchrun sets up, even for one process.
        return "torchrun" if cfg.world_size > 1 or cfg.distributed.deepspeed else "python"
    return launcher


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_prefix() -> list[str]:
    """The torchrun of this interpreter's environment (falls back to ``python -m torch.distributed.run``)."""
    script = Path(sys.executable).parent / "torchrun"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "torch.distributed.run"]


def build_command(cfg: RunConfig, run_dir: str | os.PathLike) -> list[str]:
    """The argument list that trains ``cfg`` in ``run_dir`` (absolute).

    >>> cfg = RunConfig()
    >>> build_command(cfg, "/runs/a")[-3:]
    ['-m', 'tunesmith.core.train.entry', '/runs/a']
    """
    run_dir = str(Path(run_dir).expanduser().resolve())
    di = cfg.distributed
    launcher = resolve_launcher(cfg)
    if launcher == "python":
        return [sys.executable, "-m", ENTRY_MODULE, run_dir]
    if launcher == "slurm":
        extra = shlex.split(os.environ.get("SRUN_ARGS", ""))
        return ["srun", f"--nodes={di.nnodes}", f"--ntasks-per-node={di.nproc_per_node}", "--kill-on-bad-exit=1",
                *extra, sys.executable, "-m", ENTRY_MODULE, run_dir, "--launcher", "slurm"]
    port = di.master_port or (29500 if di.nnodes > 1 else free_port())
    return [*torchrun_prefix(), f"--nproc_per_node={di.nproc_per_node}", f"--nnodes={di.nnodes}",
            f"--node_rank={di.node_rank}", f"--master_addr={di.master_addr}", f"--master_port={port}",
            "-m", ENTRY_MODULE, run_dir]


def display(cmd: list[str]) -> str:
    """Shell-quoted text of an argument list (for command.txt and --print-command)."""
    return shlex.join(cmd)
