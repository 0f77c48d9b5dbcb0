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

from .config import TrainConfig, dump_toml
from .data import atomic_save
from .errors import CheckpointError, ConfigError, IncompatibleError, NaNLossError, SnnkitError
from .interfaces import ArrayData, Dataset, LearningRule
from .network import Network, check_compatible
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

    def to_json(self) -> dict:
        d = asdict(self)
        extra = d.pop("extra")
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
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
    dataset = dataset_cls(data_dir=cfg.data_dir, **p.get("dataset", {}))
    grad_rule = next(r for r in rules if r.role == "gradient")
    torch.manual_seed(cfg.seed)
    network = Network(
        input_size=dataset.input_size,
        hidden=cfg.hidden,
        num_classes=dataset.num_classes,
        make_neuron=lambda n: neuron_cls(n, **p.get("neuron", {})),
        connectivity=conn,
        readout=cfg.readout or grad_rule.readout,
        bias=cfg.bias,
        init=cfg.init,
        weight_scale=cfg.weight_scale,
        dropout=cfg.dropout,
    )
    if cfg.backend not in ("auto", "triton", "torch", "reference"):
        raise ConfigError(f"backend must be auto, triton, torch or reference; got {cfg.backend!r}")
    network.backend = cfg.backend
    for r in rules:
        r.setup(network)
    device = resolve_device(cfg.device)
    if cfg.backend == "triton":
        from .scan import triton_available

        if not triton_available(device.type):
            raise IncompatibleError(
                f"--backend triton needs Triton and a CUDA device (device here: {device.type}); on a CPU Triton only "
                f"runs under its interpreter, for tests (TRITON_INTERPRET=1 and SNNKIT_TRITON_ON_CPU=1). "
                f"Use --backend auto or torch."
            )
    network.to(device)
    return Built(cfg, network, rules, dataset, device)


def make_optimizer(built: Built) -> torch.optim.Optimizer:
    cfg, net = built.config, built.network
    rule = built.gradient_rule
    lr = cfg.lr if cfg.lr is not None else rule.hparams.get("lr", 1e-3)
    wd = cfg.weight_decay if cfg.weight_decay is not None else rule.hparams.get("weight_decay", 0.0)
    groups: list[dict] = []
    seen: set[int] = set()
    for mod in net.modules():
        spec = getattr(mod, "optim_groups", None)
        if callable(spec) and mod is not net:
            for g in spec(lr, wd):
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


def _batches(data: ArrayData, batch_size: int, shuffle: bool, generator: torch.Generator | None, device: torch.device | None = None):
    """``(x, y)`` batches, x (B, T, C). With ``data.encode``, the indexed rows (an ``expand`` stays a view) are moved
    to ``device`` and encoded there, with randomness drawn from ``generator`` after the shuffle."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if data.encode is None:
            yield data.x[idx], data.y[idx]
            continue
        x = data.rows(idx)
        if device is not None and x.device != device:
            x = ArrayData.compact(x).to(device, non_blocking=True).expand(x.shape)  # copy the base, not the expand
        yield data.encode(x, generator), data.y[idx]


def _step_batch(built: Built, x: torch.Tensor, y: torch.Tensor):
    x = x.to(built.device, non_blocking=True).transpose(0, 1)  # (B, T, C) -> (T, B, C)
    y = y.to(built.device, non_blocking=True)
    out = built.network(x)
    return out, y


def evaluate(built: Built, data: ArrayData, batch_size: int, progress: Progress = _no_progress) -> tuple[float, float]:
    """Mean loss and accuracy over ``data`` (no gradients)."""
    net, rule = built.network, built.gradient_rule
    net.eval()
    total_loss, correct, n = 0.0, 0, 0
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)  # only data.encode draws from it: every evaluation sees the same inputs
        batches = _batches(data, batch_size, False, gen, built.device)
        for x, y in progress(batches, total=math.ceil(len(data) / batch_size), description="eval"):
            out, y = _step_batch(built, x, y)
            total_loss += float(rule.loss(out, y)) * len(y)
            correct += int((rule.logits(out).argmax(1) == y).sum())
            n += len(y)
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
        "threads": torch.get_num_threads(),  # --threads (snnkit_core.host), or torch's default
        "dataset": built.dataset.identity(),
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
    return TrainConfig.from_toml(path)


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
    data: tuple[ArrayData, ArrayData] | None = None,
) -> Iterator[EpochRecord]:
    """Train ``cfg``; yield one :class:`EpochRecord` per epoch. With ``run_dir``, write the run directory."""
    built = built or build(cfg)
    net = built.network
    opt = make_optimizer(built)
    sched = built.gradient_rule.make_scheduler(opt, cfg.epochs)
    train_data, test_data = data or load_splits(built, None if progress is _no_progress else progress)
    if cfg.data_on_device:
        train_data, test_data = train_data.to(built.device), test_data.to(built.device)
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
            _truncate_metrics(run / "metrics.jsonl", start_epoch)
        else:
            run.mkdir(parents=True, exist_ok=True)
            if (run / "checkpoint.pt").exists():
                raise CheckpointError(f"{run} already holds a run; use --resume {run} to continue it, or another --out")
            (run / "config.toml").write_text(dump_toml({"train": cfg.to_dict()}))
            (run / "manifest.json").write_text(json.dumps(manifest(built), indent=2))
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        total_loss, correct, n = 0.0, 0, 0
        nb = math.ceil(len(train_data) / cfg.batch_size)
        net.train()
        for x, y in progress(_batches(train_data, cfg.batch_size, True, gen, built.device), total=nb, description=f"epoch {epoch + 1}"):
            out, y = _step_batch(built, x, y)
            rule = built.gradient_rule
            loss = rule.loss(out, y)
            if not torch.isfinite(loss):
                raise NaNLossError(
                    f"the loss became {float(loss.detach())} in epoch {epoch + 1}. Lower --lr or check the data; "
                    + (f"{run} keeps the last good checkpoint, of epoch {epoch} (--resume {run})." if run and epoch > 0
                       else "no epoch had finished, so there is no checkpoint to resume from." if run else "")
                )
            opt.zero_grad(set_to_none=True)
            rule.backward(loss, out, y, net)
            opt.step()
            for r in built.rules:
                r.after_step(net)
            for layer in net.spiking_layers():
                layer.neuron.clamp_()
            total_loss += float(loss.detach()) * len(y)  # CPU-GPU sync point, once per batch
            correct += int((rule.logits(out).detach().argmax(1) == y).sum())
            n += len(y)
        test_loss, test_acc = evaluate(built, test_data, cfg.batch_size)
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
        )
        if run is not None:
            state = {
                "epoch": epoch,
                "model": net.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else {},
                "rng": torch.get_rng_state(),
                "rules": [r.state_dict() for r in built.rules],
            }
            atomic_save(state, run / "checkpoint.pt")
            with open(run / "metrics.jsonl", "a") as f:
                f.write(json.dumps(rec.to_json()) + "\n")
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
