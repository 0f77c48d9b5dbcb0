"""``snnkit train --devices N``: start N training processes on this machine (as torchrun would) and wait."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from snnkit_core.engine.config import TrainConfig, dump_toml
from snnkit_core.contract.errors import ConfigError

from .render import console


def launch_train(devices: int, cfg: TrainConfig, run_dir: Path, resume: bool, quiet: bool, tensorboard: bool = False,
                 threads: int | None = None) -> None:
    """Run the already-resolved ``cfg`` in ``devices`` processes: each gets the config as a file (new run) or the
    run directory (``--resume``), so every process trains exactly what this command parsed."""
    from snnkit_core.engine.distributed import env_world, launch

    if env_world().active:
        raise ConfigError("--devices starts its own processes; under torchrun, leave it out (torchrun sets the number)")
    _precheck(cfg)
    if cfg.device.startswith("cuda") or cfg.device == "auto":
        import torch

        if torch.cuda.is_available() and devices > torch.cuda.device_count():
            raise ConfigError(f"--devices {devices} needs {devices} GPUs (one per process); torch sees {torch.cuda.device_count()}")
    console.print(f"[bold]snnkit train[/] --devices {devices}: {devices} processes, global batch "
                  f"{devices} x {cfg.batch_size} -> {run_dir}")
    extra = (["--quiet"] if quiet else []) + (["--tensorboard"] if tensorboard else []) + (["--threads", str(threads)] if threads else [])
    if resume:
        code = launch(devices, ["train", "--resume", str(run_dir), *extra])
    else:
        with tempfile.TemporaryDirectory(prefix="snnkit-launch-") as tmp:
            path = Path(tmp) / "config.toml"
            path.write_text(dump_toml({"train": cfg.to_dict()}))
            code = launch(devices, ["train", "--config", str(path), "--out", str(run_dir), *extra])
    if code != 0:
        raise click.ClickException(f"a training process exited with code {code} (its message is above); the others were stopped")


def _precheck(cfg: TrainConfig) -> None:
    """Errors every process would hit, said once here: unknown components, an unusable device. (Nothing that
    reads data: the processes do that.)"""
    from snnkit_core.contract.plugins import get_registry
    from snnkit_core.engine.training import resolve_device

    reg = get_registry()
    for kind, name in [("neuron", cfg.neuron), ("connectivity", cfg.conn), ("dataset", cfg.dataset), *(("rule", r) for r in cfg.rules)]:
        reg.get(kind, name)
    resolve_device(cfg.device)
