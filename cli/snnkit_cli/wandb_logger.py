"""``snnkit train --logger wandb``: a Weights & Biases run in offline mode, in ``RUN_DIR/wandb/`` (optional extra
``wandb``; no account or network needed). Upload it later with ``wandb sync RUN_DIR/wandb/offline-run-*``.

The run's configuration is the W&B config, every epoch's numbers are logged with step = epoch (named as in
metrics.csv), and config.toml and summary.json are saved with the run. Project: ``$WANDB_PROJECT``, else
``snnkit``; the W&B run is named after the run directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from snnkit_core.contract.errors import MissingDependencyError

from .logger import Logger
from .mlflow_logger import metrics


class WandbLogger(Logger):
    name = "wandb"
    summary = "a W&B run in offline mode in RUN_DIR/wandb/ (upload later with wandb sync; wandb extra)"

    def __init__(self, run_dir: Path, params: dict[str, Any]):
        super().__init__(run_dir, params)
        try:
            import wandb
        except ImportError as exc:
            raise MissingDependencyError(
                f"--logger wandb needs the wandb package ({exc}); install it with `pip install 'snnkit[wandb]'` "
                "(or `pip install wandb`), or train without it"
            ) from None
        self._wandb = wandb
        self._run = None

    def epoch(self, record: dict[str, Any]) -> None:
        if self._run is None:  # started with the first epoch, so a run that fails to start leaves nothing
            self._run = self._wandb.init(
                project=os.environ.get("WANDB_PROJECT") or "snnkit", name=self.run_dir.name, dir=str(self.run_dir),
                mode="offline", config=self.params,
                settings=self._wandb.Settings(silent=True, console="off"),
            )
        self._run.log(metrics(record), step=int(record["epoch"]))

    def close(self, finished: bool = True) -> None:
        if self._run is None:
            return
        for name in ("config.toml", "summary.json"):
            if (self.run_dir / name).exists():
                self._run.save(str(self.run_dir / name), base_path=str(self.run_dir), policy="now")
        self._run.finish(exit_code=0 if finished else 1)
        self._run = None
