"""Data-parallel training over several processes with ``torch.distributed`` (gloo on CPU, nccl on CUDA); without
``WORLD_SIZE`` > 1 in the environment nothing here does anything. docs/scale.md gives the full account."""

from __future__ import annotations

import atexit
import contextlib
import datetime
import hashlib
import os
from collections.abc import Iterable, Iterator

import torch
import torch.distributed as dist
from attrs import frozen


@frozen
class World:
    """This process's place among the training processes (``size == 1``: not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Whether this process writes the run directory and renders output (rank 0)."""
        return self.rank == 0


def env_world() -> World:
    """The world the launcher's environment variables describe (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def current() -> World:
    """The world of the initialised process group, else a single process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


def setup(device: torch.device) -> World:
    """Join the group the environment describes (gloo on CPU, nccl on CUDA) unless alone or joined; :func:`current`."""
    want = env_world()
    if not want.active or (dist.is_available() and dist.is_initialized()):
        return current()
    from snnkit_core.contract.errors import ConfigError

    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 asks for multi-process training, but this torch has no torch.distributed")
    backend = os.environ.get("SNNKIT_DIST_BACKEND") or ("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, init_method="env://", timeout=rank_timeout())  # a frozen peer ends it
    # Left to interpreter shutdown, gloo's process group can abort the process ("terminate called without an
    # active exception", exit -6) after a successful run; tear it down while the interpreter is still whole.
    atexit.register(_teardown)
    return current()


def rank_timeout() -> datetime.timedelta:
    """How long a collective waits for the other processes: ``$SNNKIT_RANK_TIMEOUT`` seconds, 300 by default."""
    return datetime.timedelta(seconds=float(os.environ.get("SNNKIT_RANK_TIMEOUT") or 300))


def _teardown() -> None:
    """Leave the group together (a rank that leaves while a peer still writes can make gloo abort that peer);
    bounded, so a peer that already died does not hang the exit."""
    if not dist.is_initialized():
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        else:
            dist.barrier()
    except Exception:  # noqa: BLE001 - a peer is gone; leave anyway
        pass
    dist.destroy_process_group()


@contextlib.contextmanager
def rank0_first(world: World) -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks (a barrier before and after): rank 0 preprocesses
    into the feature cache once, the others then load from it instead of all computing the same files."""
    if world.active and not world.main:
        _prepared()
    yield
    if world.active and world.main:
        _prepared()


def _prepared() -> None:  # preparing the data (a first binning of SSC) may take longer than a collective may wait
    if dist.get_backend() != "gloo":
        return dist.barrier()
    dist.monitored_barrier(timeout=max(rank_timeout(), datetime.timedelta(hours=1)))


def local_cuda_device(name: str) -> str:
    """``cuda`` -> ``cuda:LOCAL_RANK`` under a multi-process launch (one GPU per process); otherwise ``name``."""
    world = env_world()
    return f"cuda:{world.local_rank}" if world.active and name == "cuda" else name


def broadcast_module(module: torch.nn.Module, world: World) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()] if world.active else []:
            dist.broadcast(t.data, src=0)


def seed_rank(seed: int, epoch: int, world: World) -> None:
    """Give rank r > 0 its own stream of torch's global generator (dropout), derived from the seed and the
    epoch; rank 0 keeps the stream a single process would have."""
    if world.active and world.rank > 0:
        torch.manual_seed(_derive(seed, epoch, world.rank))


def rank_generator(generator: torch.Generator | None, world: World) -> torch.Generator | None:
    """The generator rank r draws its encoders' randomness from: the shared one on rank 0 (and in a single
    process), one derived from its seed and the rank elsewhere."""
    if generator is None or not world.active or world.rank == 0:
        return generator
    return torch.Generator().manual_seed(_derive(generator.initial_seed(), 0, world.rank))


def _derive(seed: int, epoch: int, rank: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{epoch}/{rank}".encode()).digest()[:8], "little") >> 1


def shard(idx: torch.Tensor, world: World) -> torch.Tensor:
    """Rank r's part of a global batch of indices: ``tensor_split`` into ``world.size`` parts (sizes differ
    by at most one; a part is empty only when the batch has fewer examples than processes)."""
    if not world.active:
        return idx
    return torch.tensor_split(idx, world.size)[world.rank]


def any_rank(flag: bool, world: World) -> bool:
    """Whether ``flag`` is true on any rank (every rank gets the same answer, e.g. to stop on a NaN loss together)."""
    if not world.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device(world))
    dist.all_reduce(t)
    return bool(t.item() > 0)


def sum_scalars(world: World, *values: float) -> tuple[float, ...]:
    """Each value summed over ranks (float64)."""
    if not world.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device(world))
    dist.all_reduce(t)
    return tuple(t.tolist())


def sync_gradients(params: Iterable[torch.nn.Parameter], n_local: int, reduction: str, world: World) -> None:
    """All-reduce every trainable parameter's ``.grad`` so each rank holds the global batch's gradient.

    ``reduction="mean"``: ``g = sum_r (n_r / n) g_r`` (the gradient of the mean loss over all ``n`` examples);
    ``"sum"``: ``g = sum_r g_r``. A parameter with no gradient on every rank keeps ``grad = None`` (the
    optimizer skips it, as in one process); one with a gradient on some ranks gets zeros on the others."""
    if not world.active:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    dev = params[0].device
    # one small reduction: which parameters have a gradient anywhere, and the global example count
    meta = torch.tensor(
        [0.0 if p.grad is None else 1.0 for p in params] + [float(n_local)], dtype=torch.float64, device=dev
    )
    dist.all_reduce(meta)
    n_total = float(meta[-1])
    has = (meta[:-1] > 0).tolist()
    live = [p for p, h in zip(params, has) if h]
    if not live or n_total <= 0:
        return
    weight = 1.0 if reduction == "sum" else n_local / n_total
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(dev) for p in live])
    flat.mul_(weight)
    dist.all_reduce(flat)  # one reduction for all gradients (a flat float32 buffer)
    offset = 0
    for p in live:
        k = p.numel()
        g = flat[offset : offset + k].view_as(p).to(p.device)
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)
        offset += k


class SyncedOptimizer:
    """The optimizer a rule's ``train_step`` gets: ``step()`` first all-reduces every ``.grad`` (see
    :func:`sync_gradients`, weighted by ``n_local``, this rank's examples in the batch), then steps. In one
    process it is the optimizer itself with no extra work. Everything else is the wrapped optimizer's."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter], reduction: str, world: World
    ):
        self.optimizer, self.params, self.reduction, self.world = optimizer, list(params), reduction, world
        self.n_local = 0

    def step(self, closure=None):
        sync_gradients(self.params, self.n_local, self.reduction, self.world)
        return self.optimizer.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def __getattr__(self, name):
        return getattr(self.optimizer, name)


def _comm_device(world: World) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
