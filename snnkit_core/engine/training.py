"""The one training loop. It yields per-epoch records and never prints; the CLI renders them. What it writes goes
through :class:`~snnkit_core.engine.rundir.RunDir`; ``resume=True`` continues exactly where a killed run stopped."""

from __future__ import annotations

import contextlib
import json
import math
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from attrs import asdict, evolve, field, frozen

from snnkit_core.contract.compat import check_compatible
from snnkit_core.contract.errors import CheckpointError, ConfigError, DivergedError, NaNLossError, SnnkitError
from snnkit_core.contract.errors import torch_error_reason as _torch_reason
from snnkit_core.contract.interfaces import ArrayData, Dataset, LearningRule
from snnkit_core.contract.plugins import get_registry, plugin_infos
from snnkit_core.engine import distributed
from snnkit_core.engine.assembly import assemble
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.data import indexed_batches, load_protocol_splits, to_batch
from snnkit_core.engine.metrics import best_from_metrics, health_warnings
from snnkit_core.engine.network import Network
from snnkit_core.engine.paths import check_backend
from snnkit_core.engine.rundir import RunDir

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
    #: on the validation split (snnkit_core.engine.data); None when the run has no validation
    val_loss: float | None = None
    val_accuracy: float | None = None
    #: what started going wrong at this epoch (a rising loss, validation at chance); not in the metrics line
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict:
        """The metrics line: the fields (validation ones only when the run has validation), then ``extra``'s keys."""
        return {k: v for k, v in asdict(self).items() if k not in ("extra", "warnings") and v is not None} | self.extra


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
    if cfg.data_dir and not getattr(dataset_cls, "reads_data_dir", True):
        raise ConfigError(
            f"dataset {cfg.dataset!r} does not read --data-dir (its data ships with it), so --data-dir {cfg.data_dir} "
            f"would be ignored; leave it out, or choose the dataset that reads that folder (--dataset NAME)"
        )
    p = cfg.params
    rules = [cls(**p.get(f"rule.{cls.name}", {})) for cls in rule_classes]
    neuron_cls.resolve(p.get("neuron"))  # validate before building anything
    conn = conn_cls(**p.get("conn", {}))
    check_compatible(neuron_cls, conn_cls, rules, registry=reg)
    check_backend(cfg.backend, rules)
    dataset = dataset_cls(data_dir=cfg.data_dir, **p.get("dataset", {}))
    device = resolve_device(cfg.device)
    network = assemble(
        neuron_cls, conn, rules, input_size=dataset.input_size, num_classes=dataset.num_classes, hidden=cfg.hidden,
        neuron_params=p.get("neuron", {}), readout=cfg.readout, backend=cfg.backend, device=device, registry=reg,
        bias=cfg.bias, init=cfg.init, weight_scale=cfg.weight_scale, dropout=cfg.dropout, seed=cfg.seed,
    )
    return Built(cfg, network, rules, dataset, device)


def make_optimizer(built: Built) -> torch.optim.Optimizer:
    cfg, net = built.config, built.network
    rule = built.gradient_rule
    lr = cfg.lr if cfg.lr is not None else rule.default_lr()
    wd = cfg.weight_decay if cfg.weight_decay is not None else rule.default_weight_decay()
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


def predict(built: Built, data: ArrayData, batch_size: int, progress: Progress = _no_progress,
            world: distributed.World | None = None) -> tuple[float, torch.Tensor, torch.Tensor]:
    """This process's part of ``data`` (every example in one process; ``world``: its part of each batch) through the
    gradient rule's ``eval_step`` with no gradients: the summed loss, the predicted and the true classes, in order.
    Inputs are encoded with a fixed seed, so every evaluation sees the same ones."""
    net, rule, world = built.network, built.gradient_rule, world or distributed.World()
    net.eval()
    total, preds, ys = 0.0, [torch.zeros(0, dtype=torch.int64)], [torch.zeros(0, dtype=torch.int64)]
    try:
        with torch.no_grad():
            batches = indexed_batches(data, batch_size, False, torch.Generator().manual_seed(0), built.device, world)
            for x, y, idx in progress(batches, total=math.ceil(len(data) / (batch_size * world.size)),
                                      description="eval"):
                if not len(y):  # several processes, a batch smaller than their number
                    continue
                batch = to_batch(built, x, y, idx)
                loss, logits = rule.eval_step(net, batch)
                total += float(loss) * len(y)
                preds.append(logits.argmax(1).cpu())
                ys.append(batch.y.cpu())
    finally:
        net.train()
    return total, torch.cat(preds), torch.cat(ys)


def evaluate(built: Built, data: ArrayData, batch_size: int, progress: Progress = _no_progress) -> tuple[float, float]:
    """Mean loss and accuracy over ``data`` (several processes: each evaluates its part of every batch)."""
    world = distributed.current()
    total, pred, y = predict(built, data, batch_size, progress, world)
    total, correct, n = distributed.sum_scalars(world, total, int((pred == y).sum()), len(y))
    return total / max(n, 1), correct / max(n, 1)


# ------------------------------------------------------------------------------------------ run dirs


def manifest(built: Built) -> dict[str, Any]:
    import uuid

    import snnkit_core

    return {
        "run_id": uuid.uuid4().hex,  # what marks a folder as a snnkit run (rundir.is_run); written first
        "snnkit": snnkit_core.__version__,
        "plugins": {
            p.name: {"version": p.version, "distribution": p.distribution, "error": p.error} for p in plugin_infos()
        },
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(built.device),
        "device_name": torch.cuda.get_device_name(built.device) if built.device.type == "cuda" else
        platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "seed": built.config.seed,
        "threads": torch.get_num_threads(),  # --threads (snnkit_cli.host), or torch's default
        "dataset": built.dataset.identity(),
        "recurrence": built.network.describe(),  # e.g. the sparse masks' seed and density
        "scan_paths": built.network.paths(),  # per spiking layer, chosen once at assembly (snnkit_core.engine.paths)
        "plan": built.network.plan_report(),  # per layer: the implementation that runs, and why faster ones did not
        "git_commit": _git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None



#: the run stops as diverged when a batch loss exceeds this many times the run's first batch loss
DIVERGENCE_FACTOR = 1e3


def load_weights(built: Built, run: str | Path, which: str = "last") -> dict:
    """Load ``run``'s ``checkpoint.pt`` (``last``) or ``best.pt`` (``best``, the best-on-validation epoch) into
    ``built.network`` and return the checkpoint dict; every failure is a :class:`CheckpointError` naming the
    file and the way out. The one loader for eval, plot, export and resume."""
    if which not in ("best", "last"):
        raise ConfigError(f"checkpoint must be 'best' or 'last', not {which!r}")
    rd = RunDir(run)
    name = RunDir.BEST if which == "best" else RunDir.CHECKPOINT
    ck = rd.load_checkpoint(name)
    _load_model(built, ck["model"], rd / name, rd.path)
    return ck


def _load_model(built: Built, state, path: Path, run: Path, init_from: bool = False) -> None:
    try:
        built.network.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - wrong keys or shapes, or not a state dict at all
        if init_from:
            raise CheckpointError(
                f"--init-from {run}: its weights do not fit the network this run builds ({_torch_reason(exc)}); use "
                f"the same --neuron, --conn, --hidden and dataset as {run / 'config.toml'}") from None
        raise CheckpointError(
            f"checkpoint {path} does not fit the network {run / 'config.toml'} builds "
            f"({_torch_reason(exc)}); was config.toml edited, or the checkpoint replaced? Restore the matching pair."
        ) from None


def _restore(built: Built, ck: dict, run: RunDir, opt, sched) -> None:
    """Load a checkpoint into the network, optimizer, scheduler, RNG and rules, or say clearly why not."""
    path = run / RunDir.CHECKPOINT
    run.check_unchanged(ck.get("config"), built.config.to_dict())
    _load_model(built, ck["model"], path, run.path)
    try:
        opt.load_state_dict(ck["optimizer"])
        if sched is not None and ck.get("scheduler"):
            sched.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["rng"])
        for r, state in zip(built.rules, ck.get("rules", [])):
            r.load_state_dict(state)
        int(ck["epoch"])
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(
            f"checkpoint {path} has an optimizer, scheduler or RNG state that does not fit this run "
            f"({type(exc).__name__}: {_torch_reason(exc)}). Restore it from a copy, or start a new run with "
            f"--init-from {run} (weights only)."
        ) from None


def load_init_weights(built: Built, source: str | Path) -> None:
    """``--init-from RUN_DIR``: the network weights of another run's checkpoint (optimizer state is not taken)."""
    src = Path(source)
    if not src.is_dir():
        raise CheckpointError(f"--init-from {src}: no such run directory")
    ck = RunDir(src).load_checkpoint()  # TAKEN_BY_INIT_FROM: the weights only
    _load_model(built, ck["model"], src / RunDir.CHECKPOINT, src, init_from=True)


def check_inputs(built: Built, train_data: ArrayData, test_data: ArrayData, val_data: ArrayData | None = None) -> None:
    """What the rules need of the data (e.g. tssl-bp: T % 10 == 0), that both splits hold examples, and a
    validation split for ``patience``; checked before a run directory exists."""
    for name, d in (("training", train_data), ("test", test_data)):
        if len(d) == 0:
            raise SnnkitError(f"dataset {built.config.dataset!r} has no {name} examples; nothing to train or test on")
    if built.config.patience and val_data is None:
        raise ConfigError(f"--patience {built.config.patience} stops on the validation accuracy, but this run has no "
                          f"validation split (val_fraction 0 and none in the dataset); give --val-fraction 0.1")
    for r in built.rules:
        r.check_data(train_data.x.shape[1], train_data.x.shape[2])


def train(cfg: TrainConfig, run_dir: str | Path | None = None, *, resume: bool = False,
          progress: Progress = _no_progress, built: Built | None = None, data: tuple[ArrayData, ...] | None = None,
          val_info: dict | None = None) -> Iterator[EpochRecord]:
    """Train ``cfg``; yield one :class:`EpochRecord` per epoch. With ``run_dir``, write (and lock) the run directory;
    its ``status.json`` says how the run ended. Each epoch also evaluates the validation split; the weights of the
    epoch with the best validation accuracy go to ``best.pt`` (docs/protocol.md). ``data`` given as ``(train, test)``
    or ``(train, val, test)`` is used as it is, ``val_info`` describing its validation split for the manifest. A
    non-finite batch loss, or one above ``DIVERGENCE_FACTOR`` x the first, stops the run (:class:`NaNLossError` /
    :class:`DivergedError`) with the last good checkpoint kept. Several processes: rank 0 alone writes."""
    built = built or build(cfg)
    cfg = built.config
    world = distributed.setup(built.device)  # WORLD_SIZE > 1 (torchrun, --devices): join the process group
    run = RunDir(run_dir) if run_dir is not None and world.main else None
    if run is not None and not resume:
        run.check_new()  # before any data is read: an unwritable or foreign --out fails at once
    if cfg.init_from and not resume:
        load_init_weights(built, cfg.init_from)
    distributed.broadcast_module(built.network, world)
    opt = make_optimizer(built)
    sched = built.gradient_rule.make_scheduler(opt, cfg.epochs)
    splits, val_info = _splits(built, progress, data, val_info, world)
    check_inputs(built, splits[0], splits[2], splits[1])  # e.g. tssl-bp's T % 10 == 0: before a run directory
    start_epoch, records, first_loss, health = 0, [], None, {"warnings": [], "kinds": set()}
    if resume and run_dir is not None and not world.main:  # every rank resumes the same weights and state
        ck = RunDir(run_dir).load_checkpoint()
        _restore(built, ck, RunDir(run_dir), opt, sched)
        start_epoch, first_loss = int(ck["epoch"]) + 1, ck.get("first_loss")
    if run is not None:
        start_epoch, records, first_loss = _open_run(
            built, run, resume, opt, sched, {"world_size": world.size, "validation": val_info}, health)
    distributed.seed_rank(cfg.seed, start_epoch, world)
    health["chance"] = _chance(built, splits[1])  # status.json and the checkpoint keep the warnings
    with _run_status(run, cfg, records, health):  # a resume of a run that had met --patience trains no more
        end = start_epoch if resume and distributed.any_rank(world.main and _stop_early(cfg, records, health), world) \
            else cfg.epochs
        for epoch in range(start_epoch, end):
            t0 = time.perf_counter()
            total_loss, correct, n, first_loss = _train_epoch(built, splits[0], opt, epoch, world, run, first_loss,
                                                              progress)
            rec = _epoch_record(built, splits, epoch, (total_loss, correct, n), opt, sched, t0)
            records.append(json.loads(json.dumps(rec.to_json())))  # plain JSON types: weights_only can load them
            rec = evolve(rec, warnings=_health(records, health))
            if run is not None:
                improved = (best_from_metrics(records) or {}).get("epoch") == epoch + 1  # best.pt follows the records
                _save_epoch(built, run, epoch, opt, sched, records, first_loss, improved, health)
                if rec.warnings:
                    run.write_status("running", f"epoch {epoch + 1} of {cfg.epochs} done", warnings=health["warnings"])
            yield rec
            if distributed.any_rank(world.main and _stop_early(cfg, records, health), world):
                break


def _chance(built: Built, val: ArrayData | None) -> float:
    """The validation accuracy that is still chance: 1/K plus two binomial standard deviations (-1, so no warning,
    without validation or with too few examples to tell: a bound of 100 % or more)."""
    if val is None or not len(val):
        return -1.0
    p = 1 / built.dataset.num_classes
    bound = p + 2 * math.sqrt(p * (1 - p) / len(val))
    return bound if bound < 1 else -1.0


def _health(records: list[dict], health: dict) -> tuple[str, ...]:
    """The warnings that start at this epoch (a streak that goes on is not repeated), added to ``health``."""
    now = health_warnings(records, health["chance"])
    new = tuple(text for kind, text in now.items() if kind not in health["kinds"])
    health["kinds"] = set(now)
    health["warnings"] += new
    return new


def _stop_early(cfg: TrainConfig, records: list[dict], health: dict) -> bool:
    """``--patience N``: whether the validation accuracy has not improved for N epochs (then ``health`` says so)."""
    best = best_from_metrics(records)
    if not cfg.patience or best is None or records[-1]["epoch"] - best["epoch"] < cfg.patience:
        return False
    health["stopped_early"] = records[-1]["epoch"]
    health["message"] = (f"stopped early after epoch {records[-1]['epoch']} of {cfg.epochs}: the validation accuracy "
                         f"has not improved for {cfg.patience} epochs (best: epoch {best['epoch']}, "
                         f"{best['val_accuracy']:.2%})")
    return True


def _splits(built: Built, progress: Progress, data, val_info, world) -> tuple[tuple, dict]:
    """``(train, val or None, test)`` (loaded by rank 0 first, or as given) on the device when asked, and the
    validation split's description."""
    cfg = built.config
    with distributed.rank0_first(world):  # rank 0 fills the feature cache; the others then read it
        if data is None:
            train_data, val_data, test_data, val_info = load_protocol_splits(
                built, None if progress is _no_progress else progress
            )
        else:
            train_data, val_data, test_data = data if len(data) == 3 else (data[0], None, data[1])
            val_info = val_info or {"source": "given by the caller" if val_data is not None else "none"}
    if cfg.data_on_device:
        train_data, test_data = train_data.to(built.device), test_data.to(built.device)
        val_data = val_data.to(built.device) if val_data is not None else None
    return (train_data, val_data, test_data), val_info


def _epoch_record(built: Built, splits: tuple, epoch: int, stats: tuple, opt, sched, t0: float) -> EpochRecord:
    """Evaluate, step the schedules and collect the rules' and recurrences' facts: the epoch's record."""
    cfg = built.config
    _, val_data, test_data = splits
    total_loss, correct, n = stats
    test_loss, test_acc = evaluate(built, test_data, cfg.batch_size)
    val_loss, val_acc = evaluate(built, val_data, cfg.batch_size) if val_data is not None else (None, None)
    if built.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    lr_used = opt.param_groups[0]["lr"]
    extra = end_epoch(built, epoch, sched)
    if built.device.type == "cuda":
        extra["peak_memory_mb"] = torch.cuda.max_memory_allocated(built.device) / 2**20
    return EpochRecord(
        epoch=epoch + 1, train_loss=total_loss / max(n, 1), train_accuracy=correct / max(n, 1), test_loss=test_loss,
        test_accuracy=test_acc, seconds=seconds, lr=lr_used, extra=extra, val_loss=val_loss, val_accuracy=val_acc,
    )


def end_epoch(built: Built, epoch: int, sched=None) -> dict[str, Any]:
    """What ends every epoch, after its evaluation: the schedule steps, each rule's and the network's
    ``on_epoch_end`` (0-based ``epoch``). Returns the rules' and recurrences' records for the epoch."""
    extra: dict[str, Any] = {}
    if sched is not None:
        sched.step()
    for r in built.rules:
        r.on_epoch_end(built.network, epoch)
        extra.update(r.describe(built.network))
    built.network.on_epoch_end(epoch)
    return extra | ({"recurrence": desc} if (desc := built.network.describe()) else {})


def train_batches(built: Built, data: ArrayData, epoch: int, world: distributed.World = distributed.World()):
    """Epoch ``epoch``'s training batches ``(x, y, idx)``: shuffled by a generator seeded from the run's seed and
    the epoch, so a rerun (or a resume, or a user's own loop) sees the same order."""
    gen = torch.Generator().manual_seed(built.config.seed * 100_003 + epoch)
    return indexed_batches(data, built.config.batch_size, True, gen, built.device, world)


def _save_epoch(built: Built, run: RunDir, epoch: int, opt, sched, records: list[dict], first_loss, improved: bool,
                health: dict) -> None:
    """best.pt (when validation improved), checkpoint.pt (the records and health warnings too), then the files
    derived from them."""
    net = built.network
    state = {"epoch": epoch, "model": net.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict() if sched is not None else {}, "rng": torch.get_rng_state(),
             "rules": [r.state_dict() for r in built.rules], "config": built.config.to_dict(), "records": records,
             "first_loss": first_loss, "health": {"warnings": health["warnings"], "kinds": sorted(health["kinds"])}}
    if improved:  # before checkpoint.pt: a resumed run never misses the best weights of a done epoch
        run.save_checkpoint(
            {"epoch": epoch, "model": net.state_dict(), "val_accuracy": records[-1].get("val_accuracy")}, RunDir.BEST
        )
    run.save_checkpoint(state)  # the commit; then metrics.jsonl, metrics.csv and summary.json derived from it
    run.write_records(records)


@contextlib.contextmanager
def _run_status(run: RunDir | None, cfg: TrainConfig, records: list[dict], health: dict):
    """``status.json`` says how the run ended (finished, diverged, interrupted) and what went wrong on the way
    (``warnings``); the run's lock is released."""
    if run is None:
        yield
        return
    extra = {"warnings": health["warnings"]}
    try:
        yield
        done = {"stopped_early": health["stopped_early"]} if "stopped_early" in health else {}
        run.write_status("finished", health.get("message", f"{cfg.epochs} of {cfg.epochs} epochs"), **extra, **done)
    except NaNLossError as exc:
        run.write_status("diverged", str(exc), **extra)
        raise
    except (KeyboardInterrupt, GeneratorExit):
        run.write_status("interrupted", f"stopped after {len(records)} of {cfg.epochs} epochs; continue with: "
                                        f"snnkit train --resume {run}", **extra)
        raise
    except BaseException as exc:
        run.write_status("interrupted", f"{type(exc).__name__}: {exc}", **extra)
        raise
    finally:
        run.release()


def _open_run(built: Built, run: RunDir, resume: bool, opt, sched, manifest_extra: dict,
              health: dict) -> tuple[int, list[dict], float | None]:
    """Lock ``run`` and either restore its checkpoint (resume; its derived files rebuilt, ``health`` restored) or
    write a new run's manifest (first: its run id marks the folder), config, records and status. Returns the first
    epoch to train, the records so far and the first batch loss (for divergence)."""
    cfg = built.config
    if not resume:
        run.path.mkdir(parents=True, exist_ok=True)
    run.acquire()
    start_epoch, records, first_loss = 0, [], None
    try:
        run.remove_leftover_tmp()
        if resume:
            ck = run.load_checkpoint()
            _restore(built, ck, run, opt, sched)
            start_epoch, first_loss, saved = int(ck["epoch"]) + 1, ck.get("first_loss"), ck.get("health") or {}
            health.update(warnings=list(saved.get("warnings", [])), kinds=set(saved.get("kinds", [])))
            records = run.checkpoint_records(ck)
            run.write_records(records)  # metrics.jsonl, metrics.csv and summary.json healed from the checkpoint
            run.write_status("running", f"epoch {start_epoch + 1} of {cfg.epochs}", warnings=health["warnings"])
        else:
            run.check_new(owned=True)  # again, now that no other process can write here
            run.write_json(RunDir.MANIFEST, {**manifest(built), **manifest_extra}, fault="manifest")
            run.write_config(cfg)
            run.write_records([])  # a killed first epoch starts over
            run.write_status("running", f"epoch 1 of {cfg.epochs}")
    except BaseException:
        run.release()
        raise
    return start_epoch, records, first_loss


def _train_epoch(built: Built, data: ArrayData, opt, epoch: int, world, run: RunDir | None, first_loss: float | None,
                 progress: Progress) -> tuple[float, int, int, float | None]:
    """One pass over ``data`` (this rank's part of every global batch) through the gradient rule's ``train_step``:
    loss, correct and count summed over the ranks, and the run's first batch loss. Stops on a non-finite or
    diverging loss on any rank (right after that step), or non-finite weights at the end: the last checkpoint
    stays good."""
    cfg, net, rule = built.config, built.network, built.gradient_rule
    total_loss, correct, n = 0.0, 0, 0
    nb = math.ceil(len(data) / (cfg.batch_size * world.size))
    net.train()
    step_opt = distributed.SyncedOptimizer(opt, net.parameters(), rule.grad_reduction(), world)
    for x, y, idx in progress(train_batches(built, data, epoch, world), total=nb, description=f"epoch {epoch + 1}"):
        step_opt.n_local = len(y)
        if not len(y):  # several processes, a last global batch smaller than their number: join with weight 0
            step_opt.zero_grad(set_to_none=True)
            step_opt.step()  # the same collectives, in the same order, as a rank with examples
            net.after_step()
            distributed.any_rank(False, world)
            continue
        batch = to_batch(built, x, y, idx)
        loss, logits = _train_step(built, batch, step_opt, epoch, run)
        loss_value = float(loss)  # CPU-GPU sync point, once per batch
        first_loss = loss_value if first_loss is None else first_loss
        _check_loss(loss_value, first_loss, epoch, run, world)
        total_loss += loss_value * len(y)
        correct += int((logits.argmax(1) == batch.y).sum())
        n += len(y)
    # no loss has seen the last step's update: weights it made non-finite (e.g. a fused Adam's overflow) must not
    # reach the epoch's checkpoint
    if distributed.any_rank(not all(bool(torch.isfinite(p).all()) for p in net.parameters()), world):
        raise DivergedError(f"the optimizer step made the weights non-finite in epoch {epoch + 1}: the learning "
                            f"rate {opt.param_groups[0]['lr']:.3g} is far too large. " + _stop_advice(run, epoch))
    total_loss, correct, n = distributed.sum_scalars(world, total_loss, correct, n)
    return total_loss, int(correct), int(n), first_loss


def _train_step(built: Built, batch, opt, epoch: int, run: RunDir | None):
    """The gradient rule's step (forward, loss, update). An optimizer step that overflows (e.g. Adam's
    lr / (1 - beta1^t) in float32) is a :class:`DivergedError`."""
    try:
        return built.gradient_rule.train_step(built.network, batch, opt)
    except RuntimeError as exc:
        if "overflow" not in str(exc):
            raise
        raise DivergedError(f"the optimizer step overflowed in epoch {epoch + 1} ({exc}): the learning rate "
                            f"{opt.param_groups[0]['lr']:.3g} is far too large. " + _stop_advice(run, epoch)) from None


def _check_loss(loss_value: float, first_loss: float, epoch: int, run: RunDir | None, world) -> None:
    """Raise when this batch's loss is not finite or has grown more than ``DIVERGENCE_FACTOR`` x the first, on
    any rank (every rank calls this once per step, so the ranks stop together)."""
    nan = not math.isfinite(loss_value)
    diverged = not nan and abs(loss_value) > DIVERGENCE_FACTOR * max(abs(first_loss), 1e-6)
    if not distributed.any_rank(nan or diverged, world):
        return
    if nan:
        raise NaNLossError(f"the loss became {loss_value} in epoch {epoch + 1}. " + _stop_advice(run, epoch))
    if diverged:
        raise DivergedError(
            f"the training diverged in epoch {epoch + 1}: the loss grew from {first_loss:.4g} (first batch) "
            f"to {loss_value:.4g}, more than {DIVERGENCE_FACTOR:.0f}x. " + _stop_advice(run, epoch)
        )
    raise DivergedError(f"another training process met a non-finite or diverging loss in epoch {epoch + 1}. "
                        + _stop_advice(run, epoch))


def _stop_advice(run: RunDir | None, epoch: int) -> str:
    if run is None:
        return "Lower --lr or check the data."
    if epoch > 0:
        return (f"{run} keeps the last good checkpoint, of epoch {epoch}. Start a new run from it with a lower "
                f"learning rate: snnkit train --init-from {run} --lr LOWER (and the same --neuron/--conn/--hidden)")
    return f"No epoch had finished, so {run} has no checkpoint; start again with a lower --lr, or check the data."
