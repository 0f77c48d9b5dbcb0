"""``snnkit train --devices N``: start N training processes on this machine (as torchrun would) and wait."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import click

from snnkit_core.contract.errors import ConfigError
from snnkit_core.engine.config import TrainConfig, dump_toml

from .render import console


def launch_train(devices: int, cfg: TrainConfig, run_dir: Path, resume: bool, quiet: bool, loggers: tuple = (),
                 threads: int | None = None) -> None:
    """Run the already-resolved ``cfg`` in ``devices`` processes: each gets the config as a file (new run) or the
    run directory (``--resume``), so every process trains exactly what this command parsed."""
    from snnkit_core.engine.distributed import env_world

    if env_world().active:
        raise ConfigError("--devices starts its own processes; under torchrun, leave it out (torchrun sets the number)")
    _precheck(cfg)
    if cfg.device.startswith("cuda") or cfg.device == "auto":
        import torch

        if torch.cuda.is_available() and devices > torch.cuda.device_count():
            raise ConfigError(f"--devices {devices} needs {devices} GPUs (one per process); torch sees "
                              f"{torch.cuda.device_count()}")
    console.print(f"[bold]snnkit train[/] --devices {devices}: {devices} processes, global batch "
                  f"{devices} x {cfg.batch_size} -> {run_dir}")
    extra = (
        (["--quiet"] if quiet else [])
        + [arg for name in loggers for arg in ("--logger", name)]
        + (["--threads", str(threads)] if threads else [])
    )
    if resume:
        code = launch(devices, ["train", "--resume", str(run_dir), *extra])
    else:
        with tempfile.TemporaryDirectory(prefix="snnkit-launch-") as tmp:
            path = Path(tmp) / "config.toml"
            path.write_text(dump_toml({"train": cfg.to_dict()}))
            code = launch(devices, ["train", "--config", str(path), "--out", str(run_dir), *extra])
    if code != 0:
        raise click.ClickException(f"a training process exited with code {code} (its message is above); the others "
                                   "were stopped")


def _precheck(cfg: TrainConfig) -> None:
    """Errors every process would hit, said once here: unknown components, an unusable device. (Nothing that
    reads data: the processes do that.)"""
    from snnkit_core.contract.plugins import get_registry
    from snnkit_core.engine.training import resolve_device

    reg = get_registry()
    for kind, name in [("neuron", cfg.neuron), ("connectivity", cfg.conn), ("dataset", cfg.dataset),
                       *(("rule", r) for r in cfg.rules)]:
        reg.get(kind, name)
    resolve_device(cfg.device)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nprocs: int, argv: Sequence[str], env: dict[str, str] | None = None, poll: float = 0.2) -> int:
    """Run ``python -m snnkit_cli *argv`` in ``nprocs`` processes on this machine, as torchrun would (``RANK``,
    ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``; ``OMP_NUM_THREADS`` = cores / N unless set),
    and wait. When one fails, the others are stopped (they would wait for it in their next collective). Returns
    the first non-zero exit code, or 0."""
    port = str(free_port())
    procs: list[subprocess.Popen] = []
    base = dict(os.environ if env is None else env)
    # N processes on one machine share its cores (torchrun sets 1 thread; here an even share, unless set)
    base.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nprocs)))
    for rank in range(nprocs):
        e = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nprocs),
             "LOCAL_WORLD_SIZE": str(nprocs), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        procs.append(subprocess.Popen([sys.executable, "-m", "snnkit_cli", *argv], env=e))
    code = 0
    try:
        while procs:
            for p in list(procs):
                rc = p.poll()
                if rc is None:
                    continue
                procs.remove(p)
                if rc != 0 and code == 0:
                    code = rc
                    for other in procs:
                        other.terminate()
            time.sleep(poll)
    finally:
        for p in procs:  # interrupted (Ctrl-C): stop the rest of our own children
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    return code
