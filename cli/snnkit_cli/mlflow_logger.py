"""``snnkit train --logger mlflow``: the run's hyperparameters, per-epoch metrics, and config.toml and
summary.json as artefacts, in an MLflow tracking store (optional extra ``mlflow``; no server needed).

Where: ``$MLFLOW_TRACKING_URI`` when set, else a local SQLite store ``RUN_DIR/mlflow.db`` with the artefacts in
``RUN_DIR/mlartifacts`` (``mlflow ui --backend-store-uri sqlite:///RUN_DIR/mlflow.db`` shows it; MLflow 3 no
longer writes its older folder store). Experiment: ``$MLFLOW_EXPERIMENT_NAME``, else ``snnkit``. The MLflow run
is named after the run directory; a ``--resume`` adds a new MLflow run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from snnkit_core.contract.errors import MissingDependencyError
from snnkit_core.engine.metrics import flatten

from .logger import Logger

_MAX_PARAM = 6000  # MLflow's limit on a parameter value's length


def tracking_uri(run_dir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(run_dir).resolve() / 'mlflow.db').as_posix()}"


def metrics(record: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of an epoch record by their flattened name (``test_accuracy``, ``asrc.layer0.span``);
    a list is one metric per element (``asrc.layer0.alpha.3``), as in metrics.csv."""
    return {k: float(v) for k, v in flatten(record).items()
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}


class MlflowLogger(Logger):
    """One MLflow run per training run, written through :class:`mlflow.MlflowClient` (no global MLflow state)."""

    name = "mlflow"
    summary = "an MLflow run: hyperparameters, per-epoch metrics, config.toml and summary.json (mlflow extra)"

    def __init__(self, run_dir: Path, params: dict[str, Any]):
        super().__init__(run_dir, params)
        try:
            import mlflow
        except ImportError as exc:
            raise MissingDependencyError(
                f"--logger mlflow needs the mlflow package ({exc}); install it with `pip install 'snnkit[mlflow]'` "
                "(or `pip install mlflow`), or train without it"
            ) from None
        self._mlflow = mlflow
        self._client = None
        self.run_id: str | None = None

    def _start(self) -> None:
        from mlflow.entities import Param

        self._client = client = self._mlflow.MlflowClient(tracking_uri=tracking_uri(self.run_dir))
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "snnkit"
        experiment = client.get_experiment_by_name(name)
        local = None if os.environ.get("MLFLOW_TRACKING_URI") else (self.run_dir.resolve() / "mlartifacts").as_uri()
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(name, local)
        self.run_id = client.create_run(experiment_id, run_name=self.run_dir.name).info.run_id
        params = [Param(k, str(v)[:_MAX_PARAM]) for k, v in self.params.items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            client.log_batch(self.run_id, params=params[i:i + 100])

    def epoch(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        if self._client is None:  # started with the first epoch, so a run that fails to start leaves nothing
            self._start()
        now, step = int(time.time() * 1000), int(record["epoch"])
        batch = [Metric(k, v, now, step) for k, v in metrics(record).items()]
        for i in range(0, len(batch), 1000):
            self._client.log_batch(self.run_id, metrics=batch[i:i + 1000])

    def close(self, finished: bool = True) -> None:
        if self._client is None:
            return
        for name in ("config.toml", "summary.json"):
            if (self.run_dir / name).exists():
                self._client.log_artifact(self.run_id, str(self.run_dir / name))
        self._client.set_terminated(self.run_id, "FINISHED" if finished else "FAILED")
