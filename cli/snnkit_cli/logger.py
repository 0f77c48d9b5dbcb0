"""The interface of an experiment tracker for ``snnkit train --logger NAME`` (re-exported by
:mod:`snnkit_cli.loggers`, where the registry of loggers is)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Logger:
    """One experiment tracker for one training run.

    Construct it before anything is trained: a missing package raises
    :class:`~snnkit_core.contract.errors.MissingDependencyError` there, naming what to install. Then
    :meth:`epoch` once per finished epoch (``record`` as in metrics.jsonl) and :meth:`close` once, after training
    (``config.toml`` and, when training finished, ``summary.json`` are in the run directory).
    """

    #: the name users type after ``--logger``
    name: str = ""
    #: one line for ``snnkit train --help`` and error messages
    summary: str = ""

    def __init__(self, run_dir: Path, params: dict[str, Any]):
        """``params``: the run's configuration flattened to ``section.key`` -> value (the hyperparameters)."""
        self.run_dir = Path(run_dir)
        self.params = params

    def epoch(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self, finished: bool) -> None:
        """``finished``: False when training stopped with an error or was interrupted."""
