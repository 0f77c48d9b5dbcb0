"""Opening a finished run: its network with the chosen weights (``best`` or ``last``) and its splits rebuilt
exactly as training saw them, for evaluation (:func:`~snnkit_core.engine.training.predict`) and inspection."""

from __future__ import annotations

from pathlib import Path

from snnkit_core.contract.errors import ConfigError
from snnkit_core.engine.data import load_protocol_splits
from snnkit_core.engine.rundir import RunDir
from snnkit_core.engine.training import build, load_weights

#: the weights a finished run is read with: ``best`` (the default of every command) or ``last``
WEIGHTS = ("best", "last")


def weights_used(run_dir: str | Path, weights: str = "best") -> str:
    """What ``weights`` means for this run: ``best`` when asked and the run has ``best.pt``, else ``last``."""
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be 'best' or 'last', not {weights!r}")
    return "best" if weights == "best" and (RunDir(run_dir) / RunDir.BEST).exists() else "last"


def open_for_eval(run: Path, cfg, checkpoint: str = "best"):
    """Build the network of a finished run ``cfg`` (its config, possibly changed), load its ``best`` weights
    (``best.pt``; the last checkpoint when the run has none) or ``last``, and rebuild its splits exactly as
    training saw them. Returns ``(built, used_checkpoint, checkpoint_dict, {split name: data})``."""
    used = weights_used(run, checkpoint)
    built = build(cfg)
    ck = load_weights(built, run, used)
    train, val, test, _info = load_protocol_splits(built)
    return built, used, ck, {"train": train, "test": test} | ({"val": val} if val is not None else {})


def load_run(run_dir: str | Path, weights: str = "best", data_dir: str | None = None):
    """``(built, network, used)`` of a run directory with its ``best`` weights (``best.pt``, the best-on-validation
    epoch; the last checkpoint when the run has none) or ``last``, in eval mode on the CPU, for inspection (plot,
    export). ``used`` names the weights loaded. ``data_dir`` overrides the run's data root (only the dataset's shapes
    and, for plots, its test split are read)."""
    used = weights_used(run_dir, weights)
    run = RunDir(run_dir)
    cfg = run.config()
    # inspection runs on the CPU (a GPU run's Triton backend falls back to torch); the data may have moved
    cfg = cfg.evolve(device="cpu", backend="auto" if cfg.backend == "triton" else cfg.backend,
                     **({"data_dir": str(Path(data_dir).expanduser().absolute())} if data_dir else {}))
    built = build(cfg)
    load_weights(built, run.path, used)
    built.network.eval()
    return built, built.network, used
