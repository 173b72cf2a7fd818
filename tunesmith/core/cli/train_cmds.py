"""Training verbs: ``train`` (XTuner's flags), ``demo``, and ``status`` / ``stop`` on a run folder."""

from __future__ import annotations

import os

LAUNCHER_ALIASES = {"none": "python", "pytorch": "torchrun"}
DIST_ENV = (("NPROC_PER_NODE", "nproc_per_node", int), ("NNODES", "nnodes", int), ("NODE_RANK", "node_rank", int),
            ("ADDR", "master_addr", str), ("PORT", "master_port", int))


def register(sub) -> None:
    p = sub.add_parser("train", help="train from a preset or a config YAML (XTuner-compatible flags)",
                       description="Train CONFIG (a preset name from `list-cfg` or a YAML path). Runs in the "
                                   "foreground and shows progress; Ctrl-C stops gracefully (saves a checkpoint), "
                                   "a second Ctrl-C kills. Env vars NPROC_PER_NODE, NNODES, NODE_RANK, ADDR, PORT "
                                   "work as in XTuner.")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("--work-dir", help="run folder (default: work_dirs/<config name>)")
    p.add_argument("--deepspeed", metavar="NAME|PATH",
                   help="zero1, zero2, zero2_offload, zero3, zero3_offload or a DeepSpeed JSON")
    p.add_argument("--resume", nargs="?", const="latest", metavar="CKPT",
                   help="resume from the latest checkpoint of the run folder, or from CKPT")
    p.add_argument("--seed", type=int)
    p.add_argument("--set", "--cfg-options", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="override config fields, e.g. training.learning_rate=1e-4")
    p.add_argument("--nproc-per-node", "--nproc_per_node", type=int, dest="nproc_per_node")
    p.add_argument("--nnodes", type=int)
    p.add_argument("--node-rank", "--node_rank", type=int, dest="node_rank")
    p.add_argument("--master-addr", "--master_addr", dest="master_addr")
    p.add_argument("--master-port", "--master_port", type=int, dest="master_port")
    p.add_argument("--launcher", choices=["auto", "python", "torchrun", "slurm", "none", "pytorch"])
    p.add_argument("--print-command", action="store_true", help="print the exact command and exit")
    p.add_argument("--detach", action="store_true", help="start the run and return at once")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="LoRA-train the bundled SmolLM2 to call itself Melody (CPU, a few minutes)")
    p.add_argument("--work-dir", help="run folder (default: work_dirs/demo, or demo-2, demo-3 ... if taken)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    p.add_argument("--print-command", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("status", help="show the state of a training run folder")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true", help="print status.json as JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("stop", help="stop a training run gracefully (it saves a checkpoint, then exits); "
                                    "--force kills it at once")
    p.add_argument("run_dir")
    p.add_argument("--force", "--kill", dest="force", action="store_true",
                   help="kill every process of the run now (work since the last checkpoint is lost)")
    p.set_defaults(func=cmd_stop)


def config_from_args(args):
    """RunConfig from CONFIG + env vars + flags (flags win over env, env over the file)."""
    from tunesmith.core.presets import load_config

    cfg = load_config(args.config)
    sets = list(args.overrides)
    for env, name, kind in DIST_ENV:
        if os.environ.get(env):
            sets.append(f"distributed.{name}={kind(os.environ[env])}")
    for name in ("nproc_per_node", "nnodes", "node_rank", "master_addr", "master_port"):
        value = getattr(args, name, None)
        if value is not None:
            sets.append(f"distributed.{name}={value}")
    if getattr(args, "launcher", None):
        sets.append(f"distributed.launcher={LAUNCHER_ALIASES.get(args.launcher, args.launcher)}")
    if getattr(args, "deepspeed", None):
        sets.append(f"distributed.deepspeed={args.deepspeed.removeprefix('deepspeed_')}")
    if getattr(args, "seed", None) is not None:
        sets.append(f"training.seed={args.seed}")
    if getattr(args, "resume", None):
        sets.append(f"training.resume_from={args.resume}")
    if getattr(args, "work_dir", None):
        sets.append(f"output.run_dir={os.path.abspath(os.path.expanduser(args.work_dir))}")
    if not cfg.output.name and not cfg.output.run_dir:
        stem = os.path.splitext(os.path.basename(args.config))[0]
        sets.append(f"output.name={stem}")
    return cfg.with_overrides(sets) if sets else cfg


def cmd_train(args) -> int:
    cfg = config_from_args(args)
    return _run(cfg, print_command=args.print_command, detach=args.detach)


def _run(cfg, *, print_command: bool = False, detach: bool = False) -> int:
    import sys

    from tunesmith.core import preflight
    from tunesmith.core.train.commands import display
    from tunesmith.core.train.launcher import launch, prepare_run

    preflight.check(cfg)
    for line in preflight.warnings(cfg):
        print(f"warning: {line}", file=sys.stderr)
    if print_command:
        # The checks Start makes (run folder, resume checkpoint), so a printed command is one that runs.
        _, _, cmd = prepare_run(cfg)
        print(display(cmd))
        return 0
    handle = launch(cfg, checked=True)
    print(f"run folder: {handle.run_dir}\nlog:        {handle.rd.log_path}")
    if detach:
        print(f"started (pid {handle.pid}); watch with `python -m tunesmith status {handle.run_dir}`")
        return 0
    from tunesmith.core.train.watch import follow

    status = follow(handle)
    return 0 if status.get("state") in ("finished", "stopped") else 1


def cmd_demo(args) -> int:
    from tunesmith.core.train.demo import demo_config, report_demo

    cfg = demo_config(os.path.abspath(args.work_dir or _free_demo_dir()), args.overrides)
    if args.print_command:
        return _run(cfg, print_command=True)
    code = _run(cfg)
    if code == 0:
        report_demo(cfg)
    return code


def _free_demo_dir() -> str:
    """work_dirs/demo, or the first demo-N that holds no earlier run (earlier demos are never overwritten)."""
    from tunesmith.core.train.rundir import RunDir

    base, n = os.path.join("work_dirs", "demo"), 1
    path = base
    while RunDir(path).exists() or RunDir(path).list_checkpoints():
        n += 1
        path = f"{base}-{n}"
    return path


def cmd_status(args) -> int:
    import json

    from tunesmith.core.train.launcher import attach

    handle = attach(args.run_dir)
    status = handle.status()
    if args.json:
        print(json.dumps(status, indent=1, default=str))
        return 0
    from tunesmith.core.train.watch import describe

    print(describe(handle.rd, status))
    return 0


def cmd_stop(args) -> int:
    from tunesmith.core.train.launcher import attach

    handle = attach(args.run_dir)
    if args.force:
        pids = handle.kill()  # signals only processes proven to be this run's (UserError otherwise)
        print("dequeued" if pids.dequeued else f"killed {len(pids)} process(es)")
        return 0
    outcome = handle.stop()
    if outcome == "already stopping":
        print("already stopping: the run saves a checkpoint at the end of its step, then exits "
              f"(to end it now, losing the work since the last checkpoint: python -m tunesmith stop --force {args.run_dir})")
    else:
        print(outcome)
    return 0
