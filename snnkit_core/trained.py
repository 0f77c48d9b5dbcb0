"""Load a run directory's trained network for inspection (``snnkit plot``, ``snnkit export``)."""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import CheckpointError, IncompatibleError


def load_trained(run_dir: str | Path, weights: str = "last", data_dir: str | None = None):
    """``(built, network)`` (see :func:`~snnkit_core.training.build`) of a run directory, with the weights of ``checkpoint.pt`` (``last``) or ``best.pt``
    (``best``, the best-on-validation epoch where the run wrote one), in eval mode on the CPU. ``data_dir``
    overrides the run's data root (only the dataset's shapes and, for plots, its test split are read)."""
    from .training import build, load_checkpoint, read_run_config

    cfg = read_run_config(run_dir)
    # inspection runs on the CPU (a GPU run's Triton backend falls back to torch); the data may have moved
    cfg = cfg.evolve(device="cpu", backend="auto" if cfg.backend == "triton" else cfg.backend,
                     **({"data_dir": str(Path(data_dir).expanduser().absolute())} if data_dir else {}))
    built = build(cfg)
    if weights == "best":
        path = Path(run_dir) / "best.pt"
        if not path.exists():
            raise CheckpointError(f"{run_dir} has no best.pt (only runs with a validation split write one); use --weights last")
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{path} cannot be read ({type(exc).__name__}: {exc}); it may be corrupt") from None
    elif weights == "last":
        ck = load_checkpoint(run_dir)
    else:
        raise IncompatibleError(f"weights must be 'last' or 'best', not {weights!r}")
    state = ck.get("model", ck) if isinstance(ck, dict) else ck
    try:
        built.network.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"the checkpoint in {run_dir} does not fit the network its config builds: {exc}") from None
    built.network.eval()
    return built, built.network
