"""Where a run's metrics go besides metrics.jsonl: TensorBoard, or W&B / MLflow / Trackio in offline mode.

TensorBoard gets the very records written to metrics.jsonl (loss, learning rate, grad norm, tokens/s,
memory, eval loss), so the two can never disagree and the extra columns Tunesmith computes (speed,
memory) show up too; Hugging Face's own TensorBoardCallback only sees the Trainer's log dict. The
other trackers are Hugging Face's integrations, pointed at files inside the run folder: nothing
leaves the machine unless the user syncs it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from tunesmith.core.config import REPORT_TO
from tunesmith.core.errors import ConfigError

__all__ = ["REPORT_TO", "TensorBoardSink", "metric_sinks", "missing_package", "trainer_report_to"]
TENSORBOARD_DIR = "tensorboard"  # RUN_DIR/tensorboard/events.out.tfevents.*
# metrics.jsonl key -> TensorBoard tag (train/... and eval/... as the Hugging Face integrations name them)
TRAIN_TAGS = {"loss": "train/loss", "learning_rate": "train/learning_rate", "grad_norm": "train/grad_norm",
              "tokens_per_s": "train/tokens_per_s", "samples_per_s": "train/samples_per_s",
              "tokens_seen": "train/tokens_seen", "peak_mem_mb": "train/peak_mem_mb", "epoch": "train/epoch"}
EVAL_TAGS = {"eval_loss": "eval/loss"}
_OFFLINE_HINT = {
    "wandb": "runs are written to RUN_DIR/wandb in offline mode (sync later with `wandb sync`)",
    "mlflow": "runs are written to RUN_DIR/mlruns (view with `mlflow ui --backend-store-uri RUN_DIR/mlruns`)",
    "trackio": "runs are written to RUN_DIR/trackio (view with `trackio show`)",
}


def missing_package(report_to: str) -> ConfigError | None:
    """The error for a tracker whose package is not installed (None when it is, or for 'none')."""
    if report_to in ("none", "") or report_to not in REPORT_TO:
        return None
    if importlib.util.find_spec(report_to) is not None:
        return None
    where = "it is in requirements.txt" if report_to == "tensorboard" else _OFFLINE_HINT[report_to]
    return ConfigError(f"report_to '{report_to}' needs the {report_to} package, which is not installed ({where}).",
                       f"pip install {report_to}, or set training.report_to to none.", field="training.report_to")


def trainer_report_to(report_to: str, run_dir: Path) -> str:
    """The ``report_to`` value for TrainingArguments; sets the offline switches of the chosen tracker.

    TensorBoard is written by :class:`TensorBoardSink`, so the Trainer's own integration stays off.
    """
    if report_to in ("none", "tensorboard", ""):
        return "none"
    error = missing_package(report_to)
    if error is not None:
        raise error
    run_dir = Path(run_dir).resolve()
    if report_to == "wandb":
        os.environ["WANDB_MODE"] = "offline"
        os.environ["WANDB_DIR"] = str(run_dir)
    elif report_to == "mlflow":
        os.environ["MLFLOW_TRACKING_URI"] = (run_dir / "mlruns").as_uri()
    elif report_to == "trackio":
        os.environ["TRACKIO_DIR"] = str(run_dir / "trackio")
        os.environ.pop("TRACKIO_SPACE_ID", None)  # a space id would upload to the Hub
    return report_to


class TensorBoardSink:
    """Writes each metrics.jsonl record as TensorBoard scalars at its step.

    On a resumed run the writer is opened with ``purge_step``, so TensorBoard hides the older event
    files' points past the checkpoint, as metrics.jsonl drops those lines.
    """

    def __init__(self, run_dir: str | Path):
        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self.writer = None

    def start(self, step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.close()
        self.writer = SummaryWriter(str(self.log_dir), purge_step=step or None, flush_secs=10)

    def write(self, record: dict) -> None:
        if self.writer is None:
            self.start(0)
        tags = EVAL_TAGS if record.get("kind") == "eval" else TRAIN_TAGS
        step = int(record["step"])
        for key, tag in tags.items():
            value = record.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(tag, value, step)
        for key, value in record.items():  # DPO/ORPO extras (rewards/chosen, logps/rejected, ...)
            if "/" in key and isinstance(value, (int, float)):
                self.writer.add_scalar(f"train/{key}", value, step)
        self.writer.flush()  # a live `tensorboard --logdir` sees each step, and a crash loses nothing

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def metric_sinks(report_to: str, run_dir: str | Path, is_main: bool) -> list:
    """Extra receivers of metrics.jsonl records for this run (rank 0 only)."""
    if not is_main or report_to != "tensorboard":
        return []
    error = missing_package("tensorboard")
    if error is not None:
        raise error
    return [TensorBoardSink(run_dir)]
