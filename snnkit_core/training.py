"""The one training loop. It yields per-epoch records and never prints; the CLI renders them.

A run directory holds ``config.toml`` (enough to rerun), ``manifest.json`` (versions, device, seed, dataset
identity), ``metrics.jsonl`` (one JSON object per epoch) and ``checkpoint.pt`` (written atomically after
every epoch, loaded with ``weights_only=True``). ``resume=True`` continues exactly where a killed run stopped.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from attrs import asdict, field, frozen

from . import distributed
from .config import TrainConfig, dump_toml
from .data import atomic_save
from .errors import CheckpointError, ConfigError, IncompatibleError, NaNLossError, SnnkitError
from .interfaces import ArrayData, Batch, Dataset, LearningRule
from .metrics import write_csv
from .assembly import assemble
from .compat import check_compatible
from .network import Network
from .paths import check_backend
from .plugins import get_registry, plugin_infos

Progress = Callable[..., Iterable]


def _no_progress(iterable, total=None, description=""):
    return iterable


@frozen
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float
    lr: float
    extra: dict = field(factory=dict)
    #: on the validation split (snnkit_core.protocol); None when the run has no validation
    val_loss: float | None = None
    val_accuracy: float | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        extra = d.pop("extra")
        for k in ("val_loss", "val_accuracy"):
            if d[k] is None:
                del d[k]
        d.update(extra)
        return d


@frozen
class Built:
    config: TrainConfig
    network: Network
    rules: list[LearningRule]
    dataset: Dataset
    device: torch.device

    @property
    def gradient_rule(self) -> LearningRule:
        return next(r for r in self.rules if r.role == "gradient")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    name = distributed.local_cuda_device(name)  # torchrun / --devices: cuda -> cuda:LOCAL_RANK
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu or cuda") from None


def build(cfg: TrainConfig) -> Built:
    """Look up the components, check they fit together, and assemble the network (no data is read)."""
    reg = get_registry()
    neuron_cls = reg.get("neuron", cfg.neuron)
    conn_cls = reg.get("connectivity", cfg.conn)
    rule_classes = [reg.get("rule", r) for r in cfg.rules]
    dataset_cls = reg.get("dataset", cfg.dataset)
    known = {"neuron", "conn", "dataset", *(f"rule.{r}" for r in cfg.rules)}
    for key in cfg.params:
        if key not in known:
            raise ConfigError(f"parameter section {key!r} matches no component of this run; use one of {sorted(known)}")
    p = cfg.params
    rules = [cls(**p.get(f"rule.{cls.name}", {})) for cls in rule_classes]
    neuron_cls.resolve(p.get("neuron"))  # validate before building anything
    conn = conn_cls(**p.get("conn", {}))
    check_compatible(neuron_cls, conn_cls, rules, registry=reg)
    check_backend(cfg.backend, rules)
    dataset = dataset_cls(data_dir=cfg.data_dir, **p.get("dataset", {}))
    device = resolve_device(cfg.device)
    if cfg.backend == "triton":
        from .scan import triton_available

        if not triton_available(device.type):
            raise IncompatibleError(
                f"--backend triton needs Triton and a CUDA device (device here: {device.type}); on a CPU Triton only "
                f"runs under its interpreter, for tests (TRITON_INTERPRET=1 and SNNKIT_TRITON_ON_CPU=1). "
                f"Use --backend auto or torch."
            )
    network = assemble(
        neuron_cls, conn, rules, input_size=dataset.input_size, num_classes=dataset.num_classes, hidden=cfg.hidden,
        neuron_params=p.get("neuron", {}), readout=cfg.readout, backend=cfg.backend, device=device, registry=reg,
        bias=cfg.bias, init=cfg.init, weight_scale=cfg.weight_scale, dropout=cfg.dropout, seed=cfg.seed,
    )
    return Built(cfg, network, rules, dataset, device)


def make_optimizer(built: Built) -> torch.optim.Optimizer:
    cfg, net = built.config, built.network
    rule = built.gradient_rule
    lr = cfg.lr if cfg.lr is not None else rule.hparams.get("lr", 1e-3)
    wd = cfg.weight_decay if cfg.weight_decay is not None else rule.hparams.get("weight_decay", 0.0)
    groups: list[dict] = []
    seen: set[int] = set()
    declared = [m for layer in net.spiking_layers() for m in (layer.neuron, layer.recurrence) if m is not None]
    for mod in declared:  # Neuron.optim_groups / Recurrence.optim_groups (declared, default none)
        for g in mod.optim_groups(lr, wd):
            g = dict(g)
            g["params"] = [q for q in g["params"] if q.requires_grad and id(q) not in seen]
            seen.update(id(q) for q in g["params"])
            if g["params"]:
                groups.append(g)
    rest = [q for q in net.parameters() if q.requires_grad and id(q) not in seen]
    groups.insert(0, {"params": rest, "name": "weights"})
    for r in built.rules:
        groups = r.param_groups(net, groups)
    return rule.make_optimizer(groups, lr, wd)


def _batches(data: ArrayData, batch_size: int, shuffle: bool, generator: torch.Generator | None, device: torch.device | None = None,
             world: distributed.World = distributed.World()):
    """``(x, y)`` batches, x (B, T, C) (see :func:`_indexed_batches`)."""
    for x, y, _ in _indexed_batches(data, batch_size, shuffle, generator, device, world):
        yield x, y


def _indexed_batches(data: ArrayData, batch_size: int, shuffle: bool, generator: torch.Generator | None,
                     device: torch.device | None = None, world: distributed.World = distributed.World()):
    """``(x, y, idx)`` batches, x (B, T, C), idx the rows of ``data``. With ``data.encode``, the indexed rows (an
    ``expand`` stays a view) are moved to ``device`` and encoded there, with randomness drawn from ``generator``
    after the shuffle. Under several processes (``world``), each global batch of ``batch_size * world.size`` is
    split and this rank gets its part."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    generator = distributed.rank_generator(generator, world)
    for start in range(0, n, batch_size * world.size):
        idx = distributed.shard(order[start : start + batch_size * world.size], world)
        # data.batch reads only these rows (a memory-mapped x: only their pages) and makes them float32
        x = data.batch(idx, device if data.encode is not None or data.x.dtype != torch.float32 else None, generator)
        yield x, data.y[idx], idx


def to_batch(built: Built, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> Batch:
    """A :class:`Batch` on the run's device, x time-major (T, B, C)."""
    x = x.to(built.device, non_blocking=True).transpose(0, 1)  # (B, T, C) -> (T, B, C)
    return Batch(x, y.to(built.device, non_blocking=True), idx.to(built.device, non_blocking=True))


def evaluate(built: Built, data: ArrayData, batch_size: int, progress: Progress = _no_progress) -> tuple[float, float]:
    """Mean loss and accuracy over ``data`` (no gradients)."""
    net, rule = built.network, built.gradient_rule
    world = distributed.current()  # several processes: each evaluates its part of every batch
    net.eval()
    total_loss, correct, n = 0.0, 0, 0
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)  # only data.encode draws from it: every evaluation sees the same inputs
        batches = _indexed_batches(data, batch_size, False, gen, built.device, world)
        for x, y, idx in progress(batches, total=math.ceil(len(data) / (batch_size * world.size)), description="eval"):
            if not len(y):
                continue
            batch = to_batch(built, x, y, idx)
            loss, logits = rule.train_step(net, batch, None)
            total_loss += float(loss) * len(y)
            correct += int((logits.argmax(1) == batch.y).sum())
            n += len(y)
    total_loss, correct, n = distributed.sum_scalars(world, total_loss, correct, n)
    net.train()
    return total_loss / max(n, 1), correct / max(n, 1)


def load_splits(built: Built, progress: Progress | None = None) -> tuple[ArrayData, ArrayData]:
    """The train and test splits, ``--limit``-ed. ``progress(iterable, total=, description=)`` (the same
    protocol as :func:`train`'s) is shown the loaders' per-file preprocessing loops through
    :func:`snnkit_core.data.preprocessing_progress`; a cached load never calls it. ``None``: no reporting
    (beyond a hook the caller already set)."""
    from .data import preprocessing_progress

    cfg = built.config
    with preprocessing_progress(progress):
        train = built.dataset.load("train").subset(cfg.limit, cfg.seed)
        test_split = "test" if "test" in built.dataset.splits else built.dataset.splits[-1]
        test = built.dataset.load(test_split).subset(cfg.limit, cfg.seed)
    return train, test


# ------------------------------------------------------------------------------------------ run dirs


def manifest(built: Built) -> dict[str, Any]:
    import snnkit_core

    return {
        "snnkit": snnkit_core.__version__,
        "plugins": {p.name: {"version": p.version, "distribution": p.distribution, "error": p.error} for p in plugin_infos()},
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(built.device),
        "device_name": torch.cuda.get_device_name(built.device) if built.device.type == "cuda" else platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "seed": built.config.seed,
        "dataset": built.dataset.identity(),
        "scan_paths": built.network.paths(),  # per spiking layer, chosen once at assembly (snnkit_core.paths)
        "git_commit": _git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def read_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.toml"
    if not path.exists():
        raise CheckpointError(f"{run_dir} is not a run directory: it has no config.toml")
    cfg = TrainConfig.from_toml(path)
    if "val_fraction" not in path.read_text():  # a run from before validation existed trained on all of train
        cfg = cfg.evolve(val_fraction=0.0)
    return cfg


def load_checkpoint(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "checkpoint.pt"
    if not path.exists():
        raise CheckpointError(f"{run_dir} has no checkpoint.pt yet (the run stopped before its first epoch ended); start it again")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); it may be corrupt") from None


def train(
    cfg: TrainConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: Progress = _no_progress,
    built: Built | None = None,
    data: tuple[ArrayData, ...] | None = None,
) -> Iterator[EpochRecord]:
    """Train ``cfg``; yield one :class:`EpochRecord` per epoch. With ``run_dir``, write the run directory.

    Validation (:mod:`snnkit_core.protocol`): each epoch also evaluates the validation split; the weights of
    the epoch with the highest validation accuracy (the earliest on ties) go to ``best.pt`` and
    ``summary.json`` reports the test accuracy at that epoch. The test split is never used for a choice.
    ``data`` given as ``(train, test)`` or ``(train, val, test)`` is used as it is (no carve)."""
    from .protocol import best_from_metrics, load_protocol_splits, read_metrics, summary, write_json_atomic

    built = built or build(cfg)
    net = built.network
    world = distributed.setup(built.device)  # WORLD_SIZE > 1 (torchrun, --devices): join the process group
    distributed.broadcast_module(net, world)
    opt = make_optimizer(built)
    sched = built.gradient_rule.make_scheduler(opt, cfg.epochs)
    with distributed.rank0_first(world):  # rank 0 fills the feature cache; the others then read it
        if data is None:
            train_data, val_data, test_data, val_info = load_protocol_splits(built, None if progress is _no_progress else progress)
        else:
            train_data, val_data, test_data = data if len(data) == 3 else (data[0], None, data[1])
            val_info = {"source": "given by the caller" if val_data is not None else "none"}
    if cfg.data_on_device:
        train_data, test_data = train_data.to(built.device), test_data.to(built.device)
        val_data = val_data.to(built.device) if val_data is not None else None
    for r in built.rules:  # e.g. tssl-bp's desired spike trains need T % 10 == 0: fail before a run directory exists
        r.check_data(train_data.x.shape[1], train_data.x.shape[2])
    start_epoch = 0
    run = Path(run_dir) if run_dir is not None else None
    if run is not None:
        if resume:
            ck = load_checkpoint(run)
            net.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            if sched is not None and ck.get("scheduler"):
                sched.load_state_dict(ck["scheduler"])
            torch.set_rng_state(ck["rng"])
            for r, state in zip(built.rules, ck.get("rules", [])):
                r.load_state_dict(state)
            start_epoch = int(ck["epoch"]) + 1
            if world.main:
                _truncate_metrics(run / "metrics.jsonl", start_epoch)
                if start_epoch >= cfg.epochs:  # a finished run: nothing to train, but a missing summary is rebuilt
                    recs = read_metrics(run)
                    write_json_atomic(summary(recs, best_from_metrics(recs)), run / "summary.json")
        else:
            if (run / "checkpoint.pt").exists():
                raise CheckpointError(f"{run} already holds a run; use --resume {run} to continue it, or another --out")
            if world.main:  # several processes: rank 0 alone writes the run directory
                run.mkdir(parents=True, exist_ok=True)
                (run / "config.toml").write_text(dump_toml({"train": cfg.to_dict()}))
                (run / "manifest.json").write_text(json.dumps(
                    {**manifest(built), "world_size": world.size, "validation": val_info}, indent=2))
    distributed.seed_rank(cfg.seed, start_epoch, world)
    best = best_from_metrics(read_metrics(run)) if run is not None and resume else None
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        total_loss, correct, n = 0.0, 0, 0
        nb = math.ceil(len(train_data) / (cfg.batch_size * world.size))
        net.train()
        rule = built.gradient_rule
        step_opt = distributed.SyncedOptimizer(opt, net.parameters(), distributed.grad_reduction(rule), world)
        for x, y, idx in progress(_indexed_batches(train_data, cfg.batch_size, True, gen, built.device, world), total=nb, description=f"epoch {epoch + 1}"):
            if not len(y):  # several processes, a last global batch smaller than their number: join with weight 0
                step_opt.n_local = 0
                step_opt.zero_grad(set_to_none=True)
                step_opt.step()
                net.after_step()
                distributed.any_rank(False, world)
                continue
            batch = to_batch(built, x, y, idx)
            step_opt.n_local = len(y)
            # the rule's step: forward, loss, update (under several processes the optimizer all-reduces .grad first)
            loss, logits = rule.train_step(net, batch, step_opt)
            if distributed.any_rank(not torch.isfinite(loss), world):
                raise NaNLossError(
                    f"the loss became {float(loss)} in epoch {epoch + 1}. Lower --lr or check the data; "
                    + (f"{run} keeps the last good checkpoint, of epoch {epoch} (--resume {run})." if run and epoch > 0
                       else "no epoch had finished, so there is no checkpoint to resume from." if run else "")
                )
            total_loss += float(loss) * len(y)  # CPU-GPU sync point, once per batch
            correct += int((logits.argmax(1) == batch.y).sum())
            n += len(y)
        total_loss, correct, n = distributed.sum_scalars(world, total_loss, correct, n)
        test_loss, test_acc = evaluate(built, test_data, cfg.batch_size)
        val_loss, val_acc = evaluate(built, val_data, cfg.batch_size) if val_data is not None else (None, None)
        if built.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        extra: dict[str, Any] = {}
        lr_used = opt.param_groups[0]["lr"]
        if sched is not None:
            sched.step()
        for r in built.rules:
            r.on_epoch_end(net, epoch)
            extra.update(r.describe(net))
        net.on_epoch_end(epoch)
        desc = net.describe()
        if desc:
            extra["recurrence"] = desc
        if built.device.type == "cuda":
            extra["peak_memory_mb"] = torch.cuda.max_memory_allocated(built.device) / 2**20
        rec = EpochRecord(
            epoch=epoch + 1,
            train_loss=total_loss / max(n, 1),
            train_accuracy=correct / max(n, 1),
            test_loss=test_loss,
            test_accuracy=test_acc,
            seconds=seconds,
            lr=lr_used,
            extra=extra,
            val_loss=val_loss,
            val_accuracy=val_acc,
        )
        improved = val_acc is not None and (best is None or val_acc > best["val_accuracy"])
        if improved:
            best = {"epoch": epoch + 1, "val_accuracy": val_acc, "test_accuracy": test_acc}
        if run is not None and world.main:
            state = {
                "epoch": epoch,
                "model": net.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else {},
                "rng": torch.get_rng_state(),
                "rules": [r.state_dict() for r in built.rules],
            }
            if improved:  # before checkpoint.pt: a resumed run never misses the best weights of a done epoch
                atomic_save({"epoch": epoch, "model": net.state_dict(), "val_accuracy": val_acc}, run / "best.pt")
            atomic_save(state, run / "checkpoint.pt")
            with open(run / "metrics.jsonl", "a") as f:
                f.write(json.dumps(rec.to_json()) + "\n")
            write_csv(run)  # metrics.csv beside it, rebuilt from metrics.jsonl (so a resume matches it too)
            write_json_atomic(summary(read_metrics(run), best), run / "summary.json")
        yield rec


def _truncate_metrics(path: Path, keep_epochs: int) -> None:
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln)["epoch"] <= keep_epochs]
    path.write_text("".join(ln + "\n" for ln in kept))


def evaluate_run(run_dir: str | Path, dataset: str | None = None, split: str = "test", data_dir: str | None = None,
                 batch_size: int | None = None, limit: int | None = None, device: str | None = None,
                 backend: str | None = None):
    """Load a run's latest checkpoint and evaluate it on ``split``; returns (loss, accuracy, n).

    ``limit`` caps the examples (default: the run's own limit); ``device`` overrides the run's.
    """
    cfg = read_run_config(run_dir)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be a positive number of examples, not {limit}")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive number of examples, not {batch_size}")
    changes: dict[str, Any] = {"device": device or cfg.device, "backend": backend or cfg.backend}
    if limit is not None:
        changes["limit"] = limit
    if dataset:
        changes["dataset"] = dataset
    if data_dir:
        changes["data_dir"] = data_dir
    cfg = cfg.evolve(**changes)
    built = build(cfg)
    ck = load_checkpoint(run_dir)
    try:
        built.network.load_state_dict(ck["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"the checkpoint in {run_dir} does not fit the network its config builds: {exc}") from None
    if split not in built.dataset.splits:
        raise SnnkitError(f"dataset {cfg.dataset!r} has splits {list(built.dataset.splits)}, not {split!r}")
    data = built.dataset.load(split).subset(cfg.limit, cfg.seed)
    loss, acc = evaluate(built, data, batch_size or cfg.batch_size)
    return loss, acc, len(data)
