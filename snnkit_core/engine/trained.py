"""Load a run directory's trained network for inspection (``snnkit plot``, ``snnkit export``)."""

from __future__ import annotations

from pathlib import Path

from snnkit_core.contract.errors import IncompatibleError


def load_trained(run_dir: str | Path, weights: str = "last", data_dir: str | None = None):
    """``(built, network)`` (see :func:`~snnkit_core.engine.training.build`) of a run directory, with the weights of ``checkpoint.pt`` (``last``) or ``best.pt``
    (``best``, the best-on-validation epoch where the run wrote one), in eval mode on the CPU. ``data_dir``
    overrides the run's data root (only the dataset's shapes and, for plots, its test split are read)."""
    from snnkit_core.engine.training import build, load_weights, read_run_config

    cfg = read_run_config(run_dir)
    # inspection runs on the CPU (a GPU run's Triton backend falls back to torch); the data may have moved
    cfg = cfg.evolve(device="cpu", backend="auto" if cfg.backend == "triton" else cfg.backend,
                     **({"data_dir": str(Path(data_dir).expanduser().absolute())} if data_dir else {}))
    built = build(cfg)
    if weights not in ("best", "last"):
        raise IncompatibleError(f"weights must be 'last' or 'best', not {weights!r}")
    load_weights(built, run_dir, weights)
    built.network.eval()
    return built, built.network
