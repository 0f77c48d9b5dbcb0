"""The ``snnkit`` command: ``list-plugins``, ``info``, ``train``, ``eval``, ``data``, plus plugin commands."""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from snnkit_core.errors import SnnkitError

from .render import RichProgress, console, epoch_row, epoch_table, err_console


def expected_errors(fn):
    """Turn snnkit's expected errors into a clean message and exit code 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SnnkitError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


class SnnkitGroup(click.Group):
    """Adds plugin commands lazily, so a broken plugin cannot break ``snnkit --help``."""

    _plugins_added = False

    def _add_plugin_commands(self):
        if self._plugins_added:
            return
        self._plugins_added = True
        from snnkit_core import plugins

        # a plugin whose command hook fails is named; the built-in and other plugins' commands still work
        for problem in plugins.add_commands(self):
            err_console.print("[yellow]warning:[/] " + escape(problem), highlight=False)

    def list_commands(self, ctx):
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        self._add_plugin_commands()
        return super().get_command(ctx, name)


@click.group(cls=SnnkitGroup)
@click.version_option(package_name="snnkit")
def cli():
    """snnkit: train recurrent spiking neural networks on speech and other temporal data."""


# ------------------------------------------------------------------------------------- list-plugins


@cli.command("list-plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_plugins(as_json):
    """Installed plugins, their versions, the components each registers, and any that failed to load."""
    from snnkit_core.plugins import listing

    rows = listing()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="snnkit plugins")
    table.add_column("plugin")
    table.add_column("version")
    table.add_column("components")
    table.add_column("status", overflow="fold")  # a broken plugin's whole reason, never cut
    for r in rows:
        comps = ", ".join(f"{c['kind']}:{c['name']}" for c in r["components"]) or "-"
        status = f"[red]broken: {r['error']}[/]" if r["error"] else "[green]ok[/]"
        table.add_row(r["name"], r["version"] or "-", comps, status)
    console.print(table)
    if not rows:
        console.print("No plugins loaded" + (" (SNNKIT_LOAD_PLUGINS is set)" if "SNNKIT_LOAD_PLUGINS" in __import__("os").environ else "") + ".")


# --------------------------------------------------------------------------------------------- info


@cli.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(["neuron", "connectivity", "rule", "dataset"]), help="When NAME is ambiguous.")
@expected_errors
def info(name, kind):
    """What a component is: description, parameters (defaults, units) and compatibility."""
    import inspect

    from snnkit_core.errors import UnknownComponentError
    from snnkit_core.plugins import get_registry

    reg = get_registry()
    found = [c for c in reg.find(name) if kind is None or c.kind == kind]
    if not found:
        if kind:
            others = reg.find(name)
            if others:
                raise UnknownComponentError(kind, name, reg.names(kind), note=f"that name is a {others[0].kind}, not a {kind} (snnkit info {name})")
            reg.component(kind, name)  # raises, naming a broken plugin that would provide it
        notes = [reg.unavailable(k, name) for k in ("neuron", "connectivity", "rule", "dataset") if reg.unavailable(k, name)]
        raise UnknownComponentError("component", name, sorted({c.name for c in reg.all()}), note=notes[0] if notes else "")
    for comp in found:
        cls = comp.cls
        console.rule(f"[bold]{comp.kind} {comp.name}[/]  (plugin {comp.plugin})")
        console.print(cls.description or "")
        # the class's own docstring (a module often holds several components); the module's when it has none
        doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "") or inspect.getdoc(sys.modules[cls.__module__]) or ""
        if doc:
            console.print(doc, markup=False, highlight=False)
        if cls.params:
            t = Table(title="parameters (--set %s.KEY=VALUE)" % ({"connectivity": "conn", "rule": f"rule.{comp.name}"}.get(comp.kind, comp.kind)))
            for col in ("name", "default", "unit", "meaning"):
                t.add_column(col)
            for p in cls.params:
                meaning = p.help + (f" (one of {', '.join(map(str, p.choices))})" if p.choices else "")
                t.add_row(p.name, repr(p.default), p.unit, meaning)
            console.print(t)
        for line in _compat_lines(comp, reg):
            console.print(line)


def _compat_lines(comp, reg) -> list[str]:
    cls = comp.cls
    if comp.kind == "rule":
        c = cls.compatibility
        rule = cls()
        neurons = [n for n in reg.names("neuron") if not any("neuron" in p for p in rule.check(reg.get("neuron", n), _any_conn(reg, rule)))]
        conns = [n for n in reg.names("connectivity") if not any("connectivity" in p for p in rule.check(_any_neuron(reg, rule), reg.get("connectivity", n)))]
        return [
            f"role: {cls.role}; readout: {cls.readout}",
            f"neurons: {', '.join(neurons) or '(none installed)'}" + (f" (needs {', '.join(c.neuron_caps)})" if c.neuron_caps else ""),
            f"connectivity: {', '.join(conns) or '(none installed)'}",
        ]
    if comp.kind == "neuron":
        caps = [cap for cap in ("has_psc", "has_surrogate", "has_leak") if getattr(cls, cap, False)]
        rules = [r for r in reg.names("rule") if not any("neuron" in p for p in reg.get("rule", r)().check(cls, _any_conn(reg, reg.get("rule", r)())))]
        return [f"capabilities: {', '.join(caps) or '-'}", f"rules: {', '.join(rules) or '-'}"]
    if comp.kind == "connectivity":
        rules = [r for r in reg.names("rule") if not any("connectivity" in p for p in reg.get("rule", r)().check(_any_neuron(reg, reg.get("rule", r)()), cls))]
        return [f"recurrence: {cls.recurrence}; skip edges: {'yes' if cls.has_skip else 'no'}", f"rules: {', '.join(rules) or '-'}"]
    if comp.kind == "dataset":
        return [f"source: {cls.source or '-'}", f"licence: {cls.licence or '-'}", f"splits: {', '.join(cls.splits)}"]
    return []


def _any_conn(reg, rule):
    for n in reg.names("connectivity"):
        if not any("connectivity" in p for p in rule.check(_Dummy, reg.get("connectivity", n))):
            return reg.get("connectivity", n)
    return _Dummy


def _any_neuron(reg, rule):
    for n in reg.names("neuron"):
        if not any("neuron" in p for p in rule.check(reg.get("neuron", n), _Dummy)):
            return reg.get("neuron", n)
    return _Dummy


class _Dummy:
    name = "-"
    has_psc = has_surrogate = has_leak = True


# -------------------------------------------------------------------------------------------- train


def _parse_sets(values) -> dict[str, dict]:
    from snnkit_core.errors import ConfigError

    out: dict[str, dict] = {}
    for item in values:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set wants SECTION.KEY=VALUE (e.g. neuron.tau_m=8, conn.init_scale=0.3, rule.bptt.surrogate=triangle); got {item!r}")
        key, value = item.split("=", 1)
        section, _, name = key.rpartition(".")
        out.setdefault(section, {})[name] = value
    return out


@cli.command()
@click.option("--neuron", help="Neuron model (snnkit list-plugins).")
@click.option("--conn", help="Connectivity: ff, self, skip, srsc, ...")
@click.option("--rule", "rules", multiple=True, help="Learning rule; repeat to add an add-on rule (--rule tssl-bp --rule bip).")
@click.option("--dataset", help="Dataset name (default: the shipped espeak-digits).")
@click.option("--data-dir", type=click.Path(), help="Data root (or the corpus folder; for `arrays`, the file); default $SNNKIT_DATA.")
@click.option("--hidden", help="Hidden layer sizes, e.g. 400,400,400.")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--lr", type=float, help="Learning rate (default: the rule's).")
@click.option("--seed", type=int)
@click.option("--seeds", help="Train the same config once per seed into OUT/seed-K: a count (3: seeds 0,1,2) or a list (0,1,2); writes OUT/seeds.json with mean ± sd.")
@click.option("--val-fraction", type=float, help="Share of train held out (stratified, seeded) to choose the best epoch when the dataset has no val split; 0: none (default 0.1).")
@click.option("--device", help="auto (GPU when there is one), cpu or cuda.")
@click.option("--data-on-device", is_flag=True, default=None, help="Keep each split on the GPU as one tensor (no per-batch copy).")
@click.option("--backend", type=click.Choice(["auto", "triton", "torch", "reference"]), help="Scan implementation (auto: fused Triton kernels on CUDA where they exist).")
@click.option("--out", "out", type=click.Path(file_okay=False), help="Run directory (default runs/<time>-<combo>).")
@click.option("--limit", type=int, help="Train and test on at most N examples each (quick checks).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config; options given here override it.")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue a killed run from its last checkpoint.")
@click.option("--init-from", "init_from", type=click.Path(file_okay=False), help="Start a new run from the weights of RUN_DIR's checkpoint (fine-tuning; after a NaN/divergence with a lower --lr).")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="Component parameter, e.g. neuron.tau_m=8 (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--tensorboard", is_flag=True, help="Also log each epoch's metrics to RUN_DIR/tensorboard/ (needs the tensorboard package).")
@click.option("--devices", type=click.IntRange(min=1), help="Data-parallel over N processes on this machine (one GPU each on CUDA; gloo on CPU); --batch-size is per process. See docs/scale.md.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch and the CPU scans (default: torch's, one per core); recorded in the manifest.")
@expected_errors
def train(neuron, conn, rules, dataset, data_dir, hidden, epochs, batch_size, lr, seed, seeds, val_fraction, device, data_on_device, backend, out, limit, config_file, resume, init_from, sets, quiet, tensorboard, devices, threads):
    """Train a network. With no options: a sensible default on the shipped dataset."""
    import contextlib

    from snnkit_core import rundir
    from snnkit_core.host import keep_freed_memory, set_threads

    set_threads(threads)
    keep_freed_memory()
    from snnkit_core.config import TrainConfig
    from snnkit_core.distributed import env_world
    from snnkit_core.errors import ConfigError
    from snnkit_core.training import load_checkpoint, read_run_config

    main_rank = env_world().main
    if not main_rank:  # torchrun / --devices: rank 0 alone renders
        console.quiet = quiet = True
    with contextlib.ExitStack() as stack:
        if resume:
            given = [f"--{k.replace('_', '-')}" for k, v in dict(
                neuron=neuron, conn=conn, rule=rules, dataset=dataset, hidden=hidden, epochs=epochs,
                batch_size=batch_size, lr=lr, seed=seed, seeds=seeds, val_fraction=val_fraction,
                data_on_device=data_on_device, out=out, limit=limit, config=config_file, set=sets,
                init_from=init_from).items() if v not in (None, (), [])]
            if given:
                raise ConfigError(
                    f"--resume continues {resume} exactly as its config.toml says, so {', '.join(given)} cannot apply. "
                    f"To train a changed copy, start a new run from its config with the options you want: "
                    f"snnkit train --config {Path(resume) / 'config.toml'} --out NEW_DIR {' '.join(g + ' ...' for g in given)}"
                    f" (add --init-from {resume} to start from its weights)"
                )
            run_dir = Path(resume)
            cfg = read_run_config(run_dir)
            if main_rank and not (devices and devices > 1):  # --devices: its rank-0 process takes the lock
                stack.enter_context(rundir.locked(run_dir))  # nobody else writes here from now until the run ends
            # where the data is and what runs the maths may change on resume (another machine); the maths may not
            moved = {k: v for k, v in dict(data_dir=data_dir and _absolute(data_dir), device=device, backend=backend).items() if v}
            if moved:
                from snnkit_core.config import dump_toml

                cfg = cfg.evolve(**moved)
                if main_rank:  # under torchrun, rank 0 alone rewrites it
                    rundir.atomic_write_text(run_dir / "config.toml", dump_toml({"train": cfg.to_dict()}))
            ck = load_checkpoint(run_dir)
            if int(ck["epoch"]) + 1 >= cfg.epochs:
                console.print(
                    f"{run_dir} is complete: all {cfg.epochs} epochs are done, nothing to resume. To train further, start "
                    f"a new run from its weights: snnkit train --config {run_dir / 'config.toml'} --init-from {run_dir} "
                    f"--epochs N --out NEW_DIR",
                    markup=False, highlight=False, soft_wrap=True,
                )
                return
        else:
            cfg = TrainConfig.from_toml(config_file) if config_file else TrainConfig()
            changes = {
                k: v
                for k, v in dict(neuron=neuron, conn=conn, dataset=dataset, data_dir=data_dir, hidden=hidden, epochs=epochs,
                                 batch_size=batch_size, lr=lr, seed=seed, device=device, data_on_device=data_on_device,
                                 backend=backend, limit=limit, val_fraction=val_fraction, init_from=init_from).items()
                if v is not None
            }
            if rules:
                changes["rules"] = tuple(rules)
            extra = _parse_sets(sets)
            if extra:
                params = {k: dict(v) for k, v in cfg.params.items()}
                for section, kv in extra.items():
                    params.setdefault(section, {}).update(kv)
                changes["params"] = params
            cfg = cfg.evolve(**changes)
            for key in ("data_dir", "init_from"):  # config.toml must rerun from any working directory
                if getattr(cfg, key):
                    cfg = cfg.evolve(**{key: _absolute(getattr(cfg, key))})
            run_dir = Path(out) if out else None
        if seeds is not None:
            if run_dir is None:
                combo = f"{cfg.neuron}-{cfg.conn}-{'+'.join(cfg.rules)}-{cfg.dataset}"
                run_dir = rundir.make_unique_dir(Path("runs"), f"{time.strftime('%Y%m%d-%H%M%S')}-{combo}-seeds")
            _train_seeds(cfg, run_dir, seeds, seed, quiet, tensorboard, devices, threads)
            return
        _train_one(cfg, run_dir, bool(resume), quiet, tensorboard, devices, threads)


def _train_seeds(cfg, base: Path, seeds: str, seed, quiet: bool, tensorboard: bool = False, devices: int | None = None,
                 threads: int | None = None) -> None:
    """The same config once per seed into ``base/seed-K``, then ``base/seeds.json`` (mean ± sd)."""
    from snnkit_core.errors import ConfigError
    from snnkit_core.protocol import parse_seeds, seeds_report, write_json_atomic

    if seed is not None:
        raise ConfigError("--seed and --seeds together: give the seeds with --seeds alone (e.g. --seeds 0,1,2)")
    chosen = parse_seeds(seeds)
    taken = [str(base / f"seed-{s}") for s in chosen if (base / f"seed-{s}" / "checkpoint.pt").exists()]
    if taken:
        raise ConfigError(f"{', '.join(taken)} already hold runs; choose another --out (each seed trains into OUT/seed-K)")
    runs = {}
    for s in chosen:
        runs[s] = base / f"seed-{s}"
        _train_one(cfg.evolve(seed=s), runs[s], False, quiet, tensorboard, devices, threads)
    report = seeds_report(runs)
    write_json_atomic(report, base / "seeds.json")
    render_seeds(report, base / "seeds.json")


def _train_one(cfg, run_dir: Path | None, resume: bool, quiet: bool, tensorboard: bool = False,
               devices: int | None = None, threads: int | None = None) -> None:
    """Check everything (components, --out, data) before a run directory is written, then train and render.
    ``run_dir`` None: a unique default name under runs/."""
    from snnkit_core import rundir
    from snnkit_core.distributed import env_world
    from snnkit_core.errors import ConfigError
    from snnkit_core.protocol import load_protocol_splits
    from snnkit_core.training import build, check_inputs, train as run_train

    world = env_world()
    combo = f"{cfg.neuron}-{cfg.conn}-{'+'.join(cfg.rules)}-{cfg.dataset}"
    if devices and devices > 1:
        from .launch import launch_train

        if run_dir is None:
            run_dir = rundir.make_unique_dir(Path("runs"), f"{time.strftime('%Y%m%d-%H%M%S')}-{combo}")
        return launch_train(devices, cfg, run_dir, resume=resume, quiet=quiet, tensorboard=tensorboard, threads=threads)
    if world.active and run_dir is None:
        raise ConfigError("under torchrun every process must name the same run directory: give --out DIR")
    built = build(cfg)  # every component and parameter checked before anything is read or written
    if not resume and world.main:
        rundir.check_new_run(run_dir) if run_dir else rundir.check_writable(Path("runs"), "the runs folder")
    tb = None
    with RichProgress(enabled=not quiet and sys.stderr.isatty()) as progress:
        data, val_info = None, None
        if not world.active:  # one process: load and check the data before the header; several: train() loads
            train_data, val_data, test_data, val_info = load_protocol_splits(built, progress)
            check_inputs(built, train_data, test_data)
            data = (train_data, val_data, test_data)
        if run_dir is None:  # unique even for two runs started in the same second
            run_dir = rundir.make_unique_dir(Path("runs"), f"{time.strftime('%Y%m%d-%H%M%S')}-{combo}")
        if tensorboard and world.main:  # fail before training when the extra is missing; rank 0 alone writes
            from snnkit_core.metrics import TensorBoardWriter

            tb = TensorBoardWriter(run_dir)
        console.print(
            (f"resuming [bold]{escape(str(run_dir))}[/]: " if resume else "")
            + f"[bold]snnkit train[/] neuron={cfg.neuron} conn={cfg.conn} rule={'+'.join(cfg.rules)} dataset={cfg.dataset} "
            f"hidden={','.join(map(str, cfg.hidden))} epochs={cfg.epochs} -> {escape(str(run_dir))}"
        )
        table = epoch_table()
        last = None
        try:
            for rec in run_train(cfg, run_dir, resume=resume, progress=progress, built=built, data=data, val_info=val_info):
                last = rec
                if tb is not None:
                    tb.add(rec.to_json())
                table.add_row(*epoch_row(rec))
                console.print(
                    f"epoch {rec.epoch:>3}  loss {rec.train_loss:.4f}  train {100 * rec.train_accuracy:6.2f}%  "
                    + (f"val {100 * rec.val_accuracy:6.2f}%  " if rec.val_accuracy is not None else "")
                    + f"test {100 * rec.test_accuracy:6.2f}%  {rec.seconds:6.1f}s"
                    + (f"  {_summary(rec.extra)}" if rec.extra else "")
                )
        except KeyboardInterrupt:
            done = f" after epoch {last.epoch} of {cfg.epochs}" if last is not None else ""
            err_console.print(
                f"interrupted{done}; {run_dir} keeps every epoch that finished. "
                f"Continue with: snnkit train --resume {run_dir}", markup=False, highlight=False, soft_wrap=True,
            )
            sys.exit(130)
        finally:
            if tb is not None:
                tb.close()
    if last is not None:
        console.print(table)
        console.print(f"final test accuracy [bold]{100 * last.test_accuracy:.2f}%[/]; run directory {escape(str(run_dir))}")
    summary = _read_json(run_dir / "summary.json")
    if summary and summary.get("best_epoch"):
        console.print(
            f"best validation epoch {summary['best_epoch']} (val {100 * summary['best_val_accuracy']:.2f}%): "
            f"test accuracy at it [bold]{100 * summary['test_accuracy_at_best']:.2f}%[/] (weights in best.pt)"
        )


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().absolute())


def _summary(extra: dict) -> str:
    parts = []
    for k, v in extra.items():
        if isinstance(v, float):
            parts.append(f"{k} {v:.3g}")
        elif k == "recurrence":
            continue
        elif isinstance(v, (int, str)):
            parts.append(f"{k} {v}")
    return "  ".join(parts)


# --------------------------------------------------------------------------------------------- eval


from .protocol_cmds import eval_cmd, render_seeds, runs_cmd  # noqa: E402  (eval, runs: parse -> core.protocol -> render)

cli.add_command(eval_cmd)
cli.add_command(runs_cmd)


# --------------------------------------------------------------------------------------------- data


@cli.group()
def data():
    """Prepare and inspect datasets."""


def _dataset(name, data_dir, sets):
    from snnkit_core.plugins import get_registry

    from snnkit_core.errors import ConfigError

    params = _parse_sets([f"dataset.{s}" if not s.startswith("dataset.") else s for s in sets]).get("dataset", {})
    cls = get_registry().get("dataset", name)
    if data_dir and not getattr(cls, "reads_data_dir", True):
        raise ConfigError(f"dataset {name!r} does not read --data-dir (its data ships with it); leave --data-dir out")
    return cls(data_dir=data_dir, **params)


@data.command("prepare")
@click.argument("name")
@click.option("--data-dir", type=click.Path())
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Dataset parameter (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@expected_errors
def data_prepare(name, data_dir, sets, quiet):
    """Preprocess every split of a dataset into the feature cache."""
    from snnkit_core.data import preprocessing_progress

    ds = _dataset(name, data_dir, sets)
    # one bar per split (0/1 until it is loaded) and, beneath it, one per loop over the corpus's files
    with RichProgress(enabled=not quiet and sys.stderr.isatty()) as progress, preprocessing_progress(progress):
        for split in ds.splits:
            t0 = time.perf_counter()
            for _ in progress([split], total=1, description=f"preparing {name}/{split}"):
                d = ds.load(split)
            console.print(f"{name}/{split}: {len(d)} examples, x {tuple(d.x.shape)} in {time.perf_counter() - t0:.1f}s")


@data.command("info")
@click.argument("name")
@click.option("--data-dir", type=click.Path())
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
@expected_errors
def data_info(name, data_dir, sets):
    """Shapes, class counts and cache location of a dataset."""
    import torch

    from snnkit_core.data import USED_CACHE_FILES

    ds = _dataset(name, data_dir, sets)
    USED_CACHE_FILES.clear()
    t = Table(title=f"{name}: {ds.num_classes} classes, input {ds.input_size} channels")
    t.add_column("split")
    t.add_column("examples", justify="right")
    t.add_column("x shape")
    t.add_column("per class")
    for split in ds.splits:
        d = ds.load(split)
        counts = torch.bincount(d.y, minlength=ds.num_classes).tolist()
        t.add_row(split, str(len(d)), str(tuple(d.x.shape)), " ".join(map(str, counts)))
    console.print(t)
    if USED_CACHE_FILES:
        for path in USED_CACHE_FILES:
            console.print(f"cache: {path}", markup=False, highlight=False, soft_wrap=True)
    else:
        console.print("cache: none (this dataset is read directly, not preprocessed into the cache)")


# -------------------------------------------------------------------------------------------- bench


@cli.command()
@click.option("--workload", "workloads", multiple=True, help="Workload group (scsr-ti46, src-psmnist, src-ssc, ff-16k, tiny); repeatable. Default: all on CUDA, tiny on CPU.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--repeats", default=20, show_default=True, type=click.IntRange(min=1), help="Timed steps per path (median reported).")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
@click.option("--steps", type=click.IntRange(min=1), help="Time steps T of every workload (default: each workload's own).")
@click.option("--batch", type=click.IntRange(min=1), help="Batch size of every workload (default: each workload's own).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch and the CPU scans (default: torch's, one per core).")
@expected_errors
def bench(workloads, device, repeats, warmup, as_json, steps, batch, threads):
    """Time a full training step on each implementation path of the same network, with ratios and a lower bound."""
    from snnkit_core.bench import WORKLOADS, bench_workload, copy_bandwidth, lower_bound, resize
    from snnkit_core.errors import UnknownComponentError
    from snnkit_core.host import keep_freed_memory, set_threads
    from snnkit_core.training import resolve_device

    n_threads = set_threads(threads)
    keep_freed_memory()
    dev = resolve_device(device)
    names = list(workloads) or (list(WORKLOADS) if dev.type == "cuda" else ["tiny"])
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise UnknownComponentError("workload", unknown[0], WORKLOADS)
    bw = copy_bandwidth(dev)
    from snnkit_core.scan import triton_available

    paths = ["reference", "torch"] + (["triton"] if triton_available(dev.type) else [])
    results = []
    for name in names:
        for w in WORKLOADS[name]:
            w = resize(w, steps, batch)
            try:
                res = bench_workload(w, dev, paths=paths, warmup=warmup, repeats=repeats)
            except UnknownComponentError as exc:
                results.append({"workload": w.name, "skipped": str(exc)})
                continue
            res["lower_bound_ms"] = 1e3 * lower_bound(w, dev, bw)
            for p in res["paths"].values():
                if "median_ms" in p:
                    p["fraction_of_bound"] = res["lower_bound_ms"] / p["median_ms"]
            results.append(res)
    import torch

    meta = {"torch": torch.__version__, "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "copy_bandwidth_gbs": bw / 1e9, "threads": n_threads}
    if as_json:
        click.echo(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    t = Table(title=f"snnkit bench on {meta['device_name']} (torch {meta['torch']}, {n_threads} threads)")
    for col in ("workload", "path", "T x B", "median ms", "peak MB", "x vs ref", "bound ms", "fraction of bound"):
        t.add_column(col, justify="right" if col != "workload" else "left")
    for r in results:
        if "skipped" in r:
            t.add_row(r["workload"], "-", "", "skipped: " + r["skipped"].split(".")[0], "", "", "", "")
            continue
        shape = f"{r['steps']} x {r['batch']}"
        for path, p in r["paths"].items():
            if "error" in p:
                t.add_row(r["workload"], path, shape, "n/a: " + p["error"][:60], "", "", "", "")
                continue
            t.add_row(r["workload"], path, shape, f"{p['median_ms']:.2f}", "-" if p["peak_mb"] is None else f"{p['peak_mb']:.0f}",
                      f"{p['speedup_vs_reference']:.2f}", f"{r['lower_bound_ms']:.2f}", f"{p['fraction_of_bound']:.3f}")
    console.print(t)


from .export import export_cmd  # noqa: E402  (new commands live in their own modules)
from .plot import plot_cmd  # noqa: E402

cli.add_command(export_cmd)
cli.add_command(plot_cmd)


if __name__ == "__main__":  # pragma: no cover
    cli()
