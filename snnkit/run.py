"""``snnkit.train`` and ``snnkit.load_run``: run directories from Python, the same ones ``snnkit train`` writes and
every command reads, and the one rule for which weights a finished run is read with (``best``, else ``last``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from snnkit.model import Model, config_from
from snnkit_core.contract.errors import CheckpointError, ConfigError, RunDirError
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.data import load_protocol_splits
from snnkit_core.engine.rundir import RunDir, is_run
from snnkit_core.engine.training import Built, build, load_weights
from snnkit_core.engine.training import train as train_epochs

#: the weights a finished run is read with: ``best`` (the default of every command) or ``last``
WEIGHTS = ("best", "last")


def weights_used(run_dir: str | Path, weights: str = "best") -> str:
    """What ``weights`` means for this run: ``best`` when asked and the run has ``best.pt``, else ``last``."""
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be 'best' or 'last', not {weights!r}")
    return "best" if weights == "best" and (RunDir(run_dir) / RunDir.BEST).exists() else "last"


def require_run(path: str | Path) -> RunDir:
    """``path`` as a :class:`RunDir`, or a :class:`CheckpointError` saying what the folder holds instead (not a run,
    empty, missing) before anything is built from it."""
    run = RunDir(path)
    if not (run.path.is_dir() and is_run(run.path)):
        raise CheckpointError(run.missing_checkpoint())
    return run


def open_for_eval(run: Path, cfg: TrainConfig, weights: str = "best"):
    """Build the network of a finished run from ``cfg`` (its config, possibly changed), load its ``weights`` and
    rebuild its splits exactly as training saw them. Returns ``(built, weights used, checkpoint, {split: data})``."""
    require_run(run)
    used = weights_used(run, weights)
    built = build(cfg)
    ck = load_weights(built, run, used)
    train, val, test, _info = load_protocol_splits(built)
    return built, used, ck, {"train": train, "test": test} | ({"val": val} if val is not None else {})


def open_network(run_dir: str | Path, weights: str = "best", data_dir: str | None = None,
                 device: str = "cpu") -> tuple[Built, Any, str]:
    """``(built, network, weights used)`` of a run directory, in eval mode on ``device`` (a Triton run falls back to
    the torch scans off CUDA). ``data_dir`` overrides the run's data root."""
    used = weights_used(run_dir, weights)
    cfg = require_run(run_dir).config()
    cfg = cfg.evolve(device=device, backend="auto" if cfg.backend == "triton" and device == "cpu" else cfg.backend,
                     **({"data_dir": str(Path(data_dir).expanduser().absolute())} if data_dir else {}))
    built = build(cfg)
    load_weights(built, run_dir, used)
    built.network.eval()
    return built, built.network, used


class Run:
    """A finished (or stopped) run directory: its configuration, records, status and a :class:`Model` with the
    chosen weights (``weights``: ``best`` or ``last`` as loaded)."""

    def __init__(self, path: str | Path, weights: str = "best", device: str = "cpu", data_dir: str | None = None):
        self.path = Path(path)
        self._dir = RunDir(self.path)
        built, _, self.weights = open_network(self.path, weights, data_dir, device)
        self.model = Model(built)

    @property
    def config(self) -> TrainConfig:
        return self.model.config

    @property
    def records(self) -> list[dict]:
        """One dict per finished epoch (``metrics.jsonl``)."""
        return self._dir.metrics()

    @property
    def summary(self) -> dict:
        """The best validation epoch and the test accuracy at it (``summary.json``)."""
        return self._dir.read_json(RunDir.SUMMARY) or {}

    @property
    def status(self) -> dict:
        return self._dir.status(self.config.epochs)

    def predict(self, x) -> Any:
        """The predicted class of each example of ``x`` (B, T, C) or of a split (see :meth:`Model.predict`)."""
        return self.model.predict(x)

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """``{"loss", "accuracy", "n"}`` on ``split`` (train, val or test), rebuilt exactly as training saw it."""
        splits = dict(zip(("train", "val", "test"), self.model.splits()))
        if splits.get(split) is None:
            have = [k for k, v in splits.items() if v is not None]
            raise ConfigError(f"run {self.path} has splits {have}, not {split!r}")
        loss, accuracy = self.model.evaluate(splits[split])
        return {"loss": loss, "accuracy": accuracy, "n": len(splits[split])}

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, weights={self.weights!r})"


def load_run(path: str | Path, weights: str = "best", device: str = "cpu", data_dir: str | None = None) -> Run:
    """A run directory with its ``best`` weights (``best.pt``, the best epoch on validation; the last checkpoint
    when the run has none) or ``last``; ``data_dir`` where its data lives now, if it moved."""
    return Run(path, weights, device, data_dir)


def train(config: TrainConfig | dict | None = None, out: str | Path | None = None, *, resume: bool = False,
          recipes: bool = True, progress: Callable[..., Iterable] | None = None, force_memory: bool = False,
          **settings: Any) -> Run:
    """Train as ``snnkit train`` does, into the run directory ``out`` (default ``runs/<time>-<components>``), and
    return it loaded (:func:`load_run`). ``settings`` are :class:`TrainConfig`'s keys over ``config``; the
    components' recipes fill in the rest unless ``recipes=False`` (as in :func:`snnkit.build`). A run that cannot
    fit in memory is refused with the figures before anything is built, as by ``snnkit train``, unless
    ``force_memory``."""
    from snnkit_cli.resources import check_memory

    if resume and (config is not None or settings or out is None):
        raise ConfigError("resume=True continues the run exactly as its config.toml says; give only out")
    cfg = RunDir(out).config() if resume else config_from(config, recipes=recipes, **settings)
    check_memory(cfg, force_memory)
    out = Path(out) if out is not None else make_unique_dir(Path("runs"), default_run_name(cfg))
    for _ in train_epochs(cfg, out, resume=resume, **({"progress": progress} if progress else {})):
        pass
    return load_run(out)


def default_run_name(cfg: TrainConfig, suffix: str = "") -> str:
    """``runs/<time>-<neuron>-<conn>-<rules>-<dataset><suffix>``'s last part."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.neuron}-{cfg.conn}-{'+'.join(cfg.rules)}-{cfg.dataset}{suffix}"


def make_unique_dir(parent: Path, name: str) -> Path:
    """Create ``parent/name`` (or ``name-2``, ``name-3`` ...) atomically: two runs started in the same second
    never share a folder."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        path = parent / (name if i == 1 else f"{name}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"could not find a free run directory name {name}-N under {parent}")
