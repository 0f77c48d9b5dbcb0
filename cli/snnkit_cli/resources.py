"""Resource limits, checked before anything large is allocated (docs/reliability.md, "Resource limits").

* :func:`check_memory`: what a run will need (weights with their gradients and Adam's moments, the activations
  the backward pass keeps) against what this process can still get: the machine's available memory, lowered by
  an address-space limit (``ulimit -v``) or a cgroup limit, or the GPU's free memory. Refused with the figures
  (GiB needed vs available) unless ``--force-memory``. The estimate is on the low side, so a refusal means the
  run cannot fit.
* :func:`check_threads`: ``--threads`` at most the cores this process may use (more only wait for each other;
  thousands fail to start or crash OpenMP), unless forced, and never above :data:`MAX_THREADS_PER_CORE` x cores.
* :func:`check_count`: counts that each start a whole run (``--seeds``, a sweep's runs) below a sane maximum.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from snnkit_core.contract.errors import ConfigError

GIB = 2**30
#: float32 (T, B, N) tensors the backward pass keeps per spiking neuron and step (the feedforward current, the
#: membrane, the output and the spikes; most rules keep more): the estimate stays on the low side
SAVED_PER_STEP = 4
#: copies of every weight during training: the weight, its gradient and Adam's two moments
COPIES_PER_WEIGHT = 4
#: ``--threads`` above the cores needs ``--force-threads``, and never goes past this many per core
MAX_THREADS_PER_CORE = 4
#: at most this many seeds in ``--seeds`` or a sweep file, and this many runs in one sweep
MAX_SEEDS, MAX_RUNS = 1000, 10000
FORCE = "--force-memory"


def cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(n: int, force: bool | None = None) -> None:
    """Refuse ``--threads n`` above the cores (unless ``force``; None: the command has no --force-threads) and above
    ``MAX_THREADS_PER_CORE`` x cores."""
    have = cores()
    cap = MAX_THREADS_PER_CORE * have
    forcible = f" (at most {cap} with snnkit train --force-threads)" if force is not None else ""
    if n > cap or n > have and not force:
        raise ConfigError(f"--threads {n} is more than the {have} cores this process may use, so the threads would "
                          f"only wait for each other; give at most {have}{forcible}")


def check_count(what: str, n: int, limit: int, hint: str) -> None:
    """Refuse ``n`` runs (or seeds) above ``limit`` before any list of them is made."""
    if n > limit:
        raise ConfigError(f"{what} asks for {n:,} runs; at most {limit:,} are allowed in one command ({hint})")


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None  # absent, or "max"


def available_bytes(device: str = "cpu") -> tuple[int | None, str]:
    """Bytes this process can still allocate on ``device`` and where that figure comes from (None: unknown)."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free, f"GPU {device} has"
    limits = [(_meminfo_available(), "this machine has")]
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    used = _read_int(f"/proc/{os.getpid()}/statm")
    if soft != resource.RLIM_INFINITY and used is not None:
        limits.append((soft - used * os.sysconf("SC_PAGE_SIZE"), "the address-space limit (ulimit -v) leaves"))
    cap, now = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if cap is not None and now is not None:
        limits.append((cap - now, "the cgroup's memory limit leaves"))
    known = [(b, w) for b, w in limits if b is not None]
    return min(known) if known else (None, "")


def estimate(cfg, input_size: int, num_classes: int, steps: int | None, dense: bool, weights: bool = True) -> dict:
    """Bytes by part: ``weights`` (with gradients and optimizer state) and ``activations`` (kept for the backward
    pass over ``steps`` time steps of one batch; 0 when ``steps`` is unknown)."""
    sizes = [input_size, *cfg.hidden, num_classes]
    n_weights = sum(a * b for a, b in zip(sizes, sizes[1:])) + (sum(n * n for n in cfg.hidden) if dense else 0)
    neurons = sum(cfg.hidden) + num_classes
    return {"weights": 4 * COPIES_PER_WEIGHT * n_weights * weights,
            "activations": 4 * SAVED_PER_STEP * cfg.batch_size * (steps or 0) * neurons}


def check_bench_memory(workloads, device: str) -> None:
    """``snnkit bench``: each workload's input and the activations its backward keeps, at its (--steps, --batch),
    against what this process can still get; refused with the figures before anything is allocated."""
    from types import SimpleNamespace

    available, where = available_bytes(device)
    for w in workloads if available is not None else ():
        parts = estimate(SimpleNamespace(hidden=w.hidden, batch_size=w.batch), w.input_size, w.classes, w.steps, False)
        need = sum(parts.values()) + 4 * w.steps * w.batch * w.input_size
        if need > available:
            raise ConfigError(f"workload {w.name} at T {w.steps} x batch {w.batch} needs at least {need / GIB:.1f} GiB "
                              f"but {where} {available / GIB:.1f} GiB available; use smaller --steps or --batch")


def _refuse(parts: dict, available: int, where: str, sizes: str) -> None:
    need = sum(parts.values())
    if need <= available:
        return
    detail = ", ".join(f"{k} {v / GIB:.1f}" for k, v in parts.items() if v >= GIB / 20)
    detail = f" ({detail})" if detail else ""
    raise ConfigError(f"this run needs at least {need / GIB:.1f} GiB{detail} but {where} {available / GIB:.1f} GiB "
                      f"available ({sizes}); use smaller --hidden, --batch-size or dataset.steps, or add {FORCE} to "
                      "try anyway")


def _before_build(cfg) -> tuple[dict, str, int | None] | None:
    """The dataset's sizes (its constructor only: no data read, except a file ``arrays`` must read for them), the
    estimate, the device and the time steps when the dataset declares them; None when the components themselves
    are wrong (building the network then says how)."""
    import torch

    from snnkit_core.contract.errors import SnnkitError
    from snnkit_core.contract.plugins import get_registry

    try:
        reg = get_registry()
        ds = reg.get("dataset", cfg.dataset)(data_dir=cfg.data_dir, **cfg.params.get("dataset", {}))
        dense = getattr(reg.get("connectivity", cfg.conn), "recurrence", "none") == "dense"
        c, k = int(ds.input_size), int(ds.num_classes)
    except SnnkitError:
        return None
    if c < 1 or k < 1:
        raise ConfigError(f"dataset {cfg.dataset!r} gives {c} input channels and {k} classes; both must be >= 1 "
                          f"(check its parameters: snnkit info {cfg.dataset})")
    steps = getattr(ds, "hparams", {}).get("steps")
    steps = steps if isinstance(steps, int) and not isinstance(steps, bool) else None
    device = "cuda" if cfg.device == "auto" and torch.cuda.is_available() else cfg.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        return None  # building the network says so
    return estimate(cfg, c, k, steps, dense), device, steps


def check_memory(cfg, force: bool, steps: int | None = None, built=None) -> None:
    """Before the network is built (``built`` None: weights and, when the dataset declares its time steps, the
    activations) or once the data is loaded (``built`` given, ``steps`` the data's: the activations). Refuses a
    run that cannot fit unless ``force``."""
    if force:
        return
    if built is None:
        planned = _before_build(cfg)
        if planned is None:
            return
        parts, device, steps = planned
    else:
        ds, device = built.dataset, str(built.device)
        parts = estimate(cfg, ds.input_size, ds.num_classes, steps, False, weights=False)
    available, where = available_bytes(device)
    if available is not None:
        sizes = f"--hidden {','.join(map(str, cfg.hidden))}, --batch-size {cfg.batch_size}" + (
            f", {steps:,} time steps" if steps else "")
        _refuse(parts, available, where, sizes)
