"""``snnkit train``: parse -> snnkit_core.engine.config / rundir / training -> render."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from snnkit_core.engine.config import TrainConfig

from .errors import expected_errors
from .helptext import option
from .render import RichProgress, console, epoch_row, epoch_table, err_console, plan_notes, warn_damaged
from .resources import check_memory

_D = TrainConfig()  # the defaults --help shows: what a run gets when neither the options, --config nor --preset set it


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


@click.command()
@option("--neuron", help="Neuron model (snnkit list-plugins).", show_default=_D.neuron)
@option("--conn", help="Connectivity: ff, self, skip, srsc, ...", show_default=_D.conn)
@option("--rule", "rules", multiple=True, help="Learning rule; repeat to add an add-on rule (--rule tssl-bp "
                                                     "--rule bip).", show_default=_shown(_D.rules))
@option("--dataset", help="Dataset name (the default ships with snnkit).", show_default=_D.dataset)
@option("--data-dir", type=click.Path(), help="Data root (or the corpus folder; for `arrays`, the file).",
              show_default="$SNNKIT_DATA")
@option("--hidden", help="Hidden layer sizes, e.g. 400,400,400.", show_default=_shown(_D.hidden))
@option("--epochs", type=int, help="Training epochs.", show_default=str(_D.epochs))
@option("--patience", type=click.IntRange(min=1), help="Stop once the validation accuracy has not improved for "
              "N epochs (best.pt keeps the best epoch's weights).", show_default="never stop early")
@option("--batch-size", type=int, help="Examples per training step (per process with --devices).",
              show_default=str(_D.batch_size))
@option("--lr", type=float, help="Learning rate.", show_default="the rule's")
@option("--seed", type=int, help="Seed of the weights, the shuffling, --limit's subset and the validation carve.",
              show_default=str(_D.seed))
@option("--seeds", help="Train the same config once per seed into OUT/seed-K: a count (3: seeds 0,1,2) or a list "
                              "(0,1,2); writes OUT/seeds.json with mean ± sd.")
@option("--val-fraction", type=float, help="Share of train held out (stratified, seeded) to choose the best "
                                                 "epoch when the dataset has no val split; 0: none.",
              show_default=str(_D.val_fraction))
@option("--device", help="auto (GPU when there is one), cpu or cuda.", show_default=_D.device)
@option("--data-on-device", is_flag=True, default=None, help="Keep each split on the GPU as one tensor (no "
                                                                   "per-batch copy).")
@option("--backend", type=click.Choice(["auto", "triton", "torch", "reference"]), help="Scan implementation "
                                                                                             "(auto: fused Triton "
                                                                                             "kernels on CUDA where "
                                                                                             "they exist).",
              show_default=_D.backend)
@option("--out", "out", type=click.Path(file_okay=False), help="Run directory.",
              show_default="runs/<date>-<time>-<combo>")
@option("--limit", type=int, help="Train and test on at most N examples each (quick checks).",
              show_default="all")
@option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config; options given here "
                                                                               "override it.")
@option("--preset", help="A paper recipe that ships with snnkit (snnkit presets lists them), read like --config; "
                              "options given here override it.")
@option("--resume", type=click.Path(file_okay=False), help="Continue a killed run from its last checkpoint.")
@option("--init-from", "init_from", type=click.Path(file_okay=False), help="Start a new run from the weights of "
                                                                                 "RUN_DIR's checkpoint (fine-tuning; "
                                                                                 "after a NaN/divergence with a lower "
                                                                                 "--lr).")
@option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="Component parameter, e.g. "
                                                                                "neuron.tau_m=8 (repeatable).")
@option("--quiet", is_flag=True, help="No progress bar.")
@option("--logger", "loggers", multiple=True, metavar="NAME", help="Also log the run to an experiment tracker "
        "(repeatable): tensorboard, mlflow, wandb (offline), or one a plugin adds. See docs/plots.md.")
@option("--tensorboard", is_flag=True, help="Same as --logger tensorboard.")
@option("--devices", type=click.IntRange(min=1), help="Data-parallel over N processes on this machine (one GPU "
                                                            "each on CUDA; gloo on CPU); --batch-size is per process. "
                                                            "See docs/scale.md.", show_default="1")
@option("--threads", type=click.IntRange(min=1), help="CPU threads for torch and the CPU scans; recorded in "
                                                            "the manifest.", show_default="torch's, one per core")
@option("--force-threads", is_flag=True, help="Allow --threads above the cores this process may use.")
@option("--force-memory", is_flag=True, help="Train even when the run needs more memory than snnkit estimates is "
        "available (it refuses such a run, with the figures, before allocating).")
@option("--force-devices", is_flag=True, help="Allow --devices above the CPU core count.")
@option("--change-devices", is_flag=True, help="With --resume: continue with another --devices than the run was "
        "trained with (the global batch changes).")
@option("--rank-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS", help="With --devices or "
        "torchrun: how long a process waits for the others before the run ends (a frozen or stuck process).",
        show_default="300")
@expected_errors
def train(neuron, conn, rules, dataset, data_dir, hidden, epochs, patience, batch_size, lr, seed, seeds, val_fraction,
          device, data_on_device, backend, out, limit, config_file, preset, resume, init_from, sets, quiet, loggers,
          tensorboard, devices, threads, force_threads, force_memory, force_devices, change_devices, rank_timeout):
    """Train a network. With no options: a sensible default on the shipped dataset.

    The defaults shown apply when neither the option, --config, --preset nor a component's recipe (snnkit info
    NAME shows it) sets a value.
    """
    import contextlib

    from snnkit.run import default_run_name, make_unique_dir
    from snnkit_cli.launch import Devices, prepare_process
    from snnkit_cli.options import apply_recipes, chosen_keys, new_config
    from snnkit_core.engine.distributed import env_world

    prepare_process(threads, rank_timeout, force_threads)
    loggers = tuple(loggers) + (("tensorboard",) if tensorboard else ())

    main_rank, recipe = env_world().main, {}
    if not main_rank:  # torchrun / --devices: rank 0 alone renders
        console.quiet = quiet = True
    with contextlib.ExitStack() as stack:
        if resume:
            given = dict(neuron=neuron, conn=conn, rule=rules, dataset=dataset, hidden=hidden, epochs=epochs,
                         patience=patience,
                         batch_size=batch_size, lr=lr, seed=seed, seeds=seeds, val_fraction=val_fraction,
                         out=out, limit=limit, config=config_file, preset=preset, set=sets,
                         init_from=init_from)
            moved = dict(data_dir=data_dir, device=device, backend=backend, data_on_device=data_on_device)
            opened = _open_resume(resume, given, moved, devices, change_devices, main_rank, stack)
            if opened is None:
                return
            cfg, run_dir, devices = opened
        else:
            options = dict(neuron=neuron, conn=conn, dataset=dataset, data_dir=data_dir, hidden=hidden, epochs=epochs,
                           patience=patience,
                           batch_size=batch_size, lr=lr, seed=seed, device=device, data_on_device=data_on_device,
                           backend=backend, limit=limit, val_fraction=val_fraction, init_from=init_from)
            cfg = new_config(config_file, options, tuple(rules), sets, preset=preset)
            cfg, recipe = apply_recipes(cfg, chosen_keys(config_file, options, rules, sets, preset))
            run_dir = Path(out) if out else None
        check_memory(cfg, force_memory or env_world().active)  # before any weight is allocated
        if seeds is not None:
            if run_dir is None:
                run_dir = make_unique_dir(Path("runs"), default_run_name(cfg, "-seeds"))
            _train_seeds(cfg, run_dir, seeds, seed, quiet, loggers, Devices(devices, force_devices), threads, recipe,
                         force_memory)
            return
        _train_one(cfg, run_dir, bool(resume), quiet, loggers, Devices(devices, force_devices, change_devices),
                   threads, recipe, force_memory)


def _open_resume(resume, given: dict, moved: dict, devices, change_devices: bool, main_rank: bool, stack):
    """``--resume RUN``: the run checked (a run, options it accepts, locked by this process unless --devices'
    rank 0 takes the lock) and its config; None when it is complete (said, and its derived files repaired)."""
    from snnkit_cli.launch import resume_devices
    from snnkit_core.contract.errors import CheckpointError
    from snnkit_core.engine import rundir

    run = rundir.RunDir(resume)
    if not (run.path.is_dir() and rundir.is_run(run.path)):  # nothing written, not even a lock
        raise CheckpointError(run.missing_checkpoint())
    warn_damaged(run.path)  # --resume then rewrites metrics.jsonl from the checkpoint
    devices = resume_devices(run, devices, change_devices)  # the run's own world size unless changed
    if main_rank and not (devices and devices > 1):  # --devices: its rank-0 process takes the lock
        run.check_resume_options(given)  # refuse options before taking the lock
        stack.enter_context(run.locked())  # nobody else writes here from now until the run ends
    cfg = run.resume_config(given, moved, write=main_rank)  # under torchrun rank 0 writes
    done = run.completed(cfg.epochs)
    if done:
        console.print(done + _repaired(run, cfg.epochs, main_rank), markup=False, highlight=False, soft_wrap=True)
        return None
    return cfg, run.path, devices


def _repaired(run, epochs: int, main_rank: bool) -> str:
    """The final-epoch window healed: a complete run's summary.json, metrics files and status.json rebuilt from its
    checkpoint (a kill or an I/O error after the last checkpoint landed leaves them behind); what was rewritten."""
    if not main_rank:
        return ""
    with run.locked():
        fixed = run.repair(epochs)
    return f" Repaired {', '.join(fixed)} from its checkpoint (the run had stopped before writing them)." * bool(fixed)


def _train_seeds(cfg, base: Path, seeds: str, seed, quiet: bool, loggers: tuple = (), devices=None,
                 threads: int | None = None, recipe: dict | None = None, force_memory: bool = False) -> None:
    """The same config once per seed into ``base/seed-K``, then ``base/seeds.json`` (mean ± sd)."""
    from snnkit_core.contract.errors import ConfigError
    from snnkit_core.engine.rundir import RunDir

    from .runs import parse_seeds, seeds_report

    if seed is not None:
        raise ConfigError("--seed and --seeds together: give the seeds with --seeds alone (e.g. --seeds 0,1,2)")
    chosen = parse_seeds(seeds)
    taken = [str(base / f"seed-{s}") for s in chosen if (RunDir(base / f"seed-{s}") / RunDir.CHECKPOINT).exists()]
    if taken:
        raise ConfigError(f"{', '.join(taken)} already hold runs; choose another --out (each seed trains into "
                          "OUT/seed-K)")
    runs = {}
    for s in chosen:
        runs[s] = base / f"seed-{s}"
        _train_one(cfg.evolve(seed=s), runs[s], False, quiet, loggers, devices, threads, recipe, force_memory)
    report = seeds_report(runs)
    RunDir(base).write_json("seeds.json", report)
    from .protocol_cmds import render_seeds

    render_seeds(report, base / "seeds.json")


def _train_one(cfg, run_dir: Path | None, resume: bool, quiet: bool, loggers: tuple = (),
               devices=None, threads: int | None = None, recipe: dict | None = None,
               force_memory: bool = False) -> None:
    """Check everything (components, --out, data) before a run directory is written, then train and render.
    ``run_dir`` None: a unique default name under runs/. ``recipe``: what the recipes filled in (printed, and
    recorded in manifest.json). ``devices``: a :class:`~snnkit_cli.launch.Devices` (--devices and its flags)."""
    from snnkit.recipes import describe as describe_recipe
    from snnkit.run import default_run_name, make_unique_dir
    from snnkit_core.contract.errors import ConfigError
    from snnkit_core.engine import rundir
    from snnkit_core.engine.distributed import env_world
    from snnkit_core.engine.training import build

    from .launch import peer_errors

    world = env_world()
    if devices is not None and devices.many:
        return _launch(cfg, run_dir, resume, quiet, loggers, devices, threads, recipe)
    if world.active and run_dir is None:
        raise ConfigError("under torchrun every process must name the same run directory: give --out DIR")
    built = build(cfg)  # every component and parameter checked before anything is read or written
    if not resume and world.main:
        rundir.RunDir(run_dir).check_new() if run_dir else rundir.check_writable(Path("runs"), "the runs folder")
    trackers = []
    with RichProgress(enabled=not quiet and sys.stderr.isatty()) as progress:
        data, val_info = None, None
        if not world.active:  # one process: load and check the data before the header; several: train() loads
            data, val_info = _load_checked(built, progress, force_memory)
        if run_dir is None:  # unique even for two runs started in the same second
            run_dir = make_unique_dir(Path("runs"), default_run_name(cfg))
        if world.main:  # fail before training on an unknown logger or a missing extra; rank 0 alone logs
            from .loggers import open_loggers

            trackers = open_loggers(loggers, run_dir, cfg)
        console.print(
            (f"resuming [bold]{escape(str(run_dir))}[/]: " if resume else "")
            + f"[bold]snnkit train[/] neuron={cfg.neuron} conn={cfg.conn} rule={'+'.join(cfg.rules)} "
              f"dataset={cfg.dataset} "
            f"hidden={','.join(map(str, cfg.hidden))} epochs={cfg.epochs} -> {escape(str(run_dir))}"
        )
        if recipe:
            console.print(describe_recipe(recipe), markup=False, highlight=False, soft_wrap=True)
        # e.g. no C compiler: the torch loops run (the manifest records it too)
        for note in plan_notes(built.network.plan_report()):
            err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
        finished = False
        try:
            with peer_errors(world.size):  # a lost peer: one line (or the launcher's), never a traceback
                last, table = _epochs(cfg, run_dir, resume, progress, built, data, val_info, trackers, recipe)
            finished = True
        finally:
            for tracker in trackers:
                tracker.close(finished)
    _render_result(run_dir, last, table)


def _load_checked(built, progress, force_memory: bool) -> tuple[tuple, dict]:
    """``(train, val, test)`` and the validation's description, checked: what the rules need of the data, and the
    memory of the activations at the data's time steps (before any is allocated)."""
    from snnkit_core.engine.data import load_protocol_splits
    from snnkit_core.engine.training import check_inputs

    train_data, val_data, test_data, val_info = load_protocol_splits(built, progress)
    check_inputs(built, train_data, test_data, val_data)
    check_memory(built.config, force_memory, train_data.x.shape[1], built)
    return (train_data, val_data, test_data), val_info


def _launch(cfg, run_dir: Path | None, resume: bool, quiet: bool, loggers: tuple, devices, threads, recipe) -> None:
    """``--devices N``: start N training processes (snnkit_cli.launch) and wait for them."""
    from snnkit.recipes import describe as describe_recipe
    from snnkit.run import default_run_name, make_unique_dir

    from .launch import launch_train

    if run_dir is None:
        run_dir = make_unique_dir(Path("runs"), default_run_name(cfg))
    if recipe:  # the processes get the filled config as a file, so they fill nothing themselves
        console.print(describe_recipe(recipe), markup=False, highlight=False, soft_wrap=True)
    launch_train(devices.n, cfg, run_dir, resume=resume, quiet=quiet, loggers=loggers, threads=threads,
                 force=devices.force, change=devices.change)
    if recipe:
        _record_recipe(run_dir, recipe)


def _epochs(cfg, run_dir: Path, resume: bool, progress, built, data, val_info, trackers, recipe=None):
    """Train, printing one line per epoch; returns the last record and the epoch table. Ctrl-C says how to resume.
    ``recipe`` (what the recipes filled in) joins manifest.json once the first epoch has written the run."""
    from snnkit_core.engine.training import train as run_train

    table = epoch_table()
    last = None
    try:
        for rec in run_train(cfg, run_dir, resume=resume, progress=progress, built=built, data=data, val_info=val_info):
            if last is None and recipe and not resume:
                _record_recipe(run_dir, recipe)
            last = rec
            for tracker in trackers:
                tracker.epoch(rec.to_json())
            table.add_row(*epoch_row(rec))
            console.print(
                f"epoch {rec.epoch:>3}  loss {rec.train_loss:.4f}  train {100 * rec.train_accuracy:6.2f}%  "
                + (f"val {100 * rec.val_accuracy:6.2f}%  " if rec.val_accuracy is not None else "")
                + f"test {100 * rec.test_accuracy:6.2f}%  {rec.seconds:6.1f}s"
                + (f"  {_summary(rec.extra)}" if rec.extra else "")
            )
            for warning in rec.warnings:  # also in status.json
                err_console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    except KeyboardInterrupt:
        from .launch import interrupted_hint

        interrupted_hint(run_dir, cfg.epochs, last.epoch if last is not None else None)
        sys.exit(130)
    return last, table


def _record_recipe(run_dir: Path, recipe: dict) -> None:
    """Add ``recipe`` (key -> value and the component it came from) to the run's manifest.json (rank 0 only)."""
    from snnkit_core.engine.distributed import env_world
    from snnkit_core.engine.rundir import RunDir

    run = RunDir(run_dir)
    manifest = run.read_json(RunDir.MANIFEST)
    if env_world().main and isinstance(manifest, dict):
        run.write_json(RunDir.MANIFEST, {**manifest, "recipe": recipe}, fault="manifest")


def _render_result(run_dir: Path, last, table) -> None:
    if last is not None:
        console.print(table)
        console.print(f"final test accuracy [bold]{100 * last.test_accuracy:.2f}%[/]; run directory "
                      f"{escape(str(run_dir))}")
    from snnkit_core.engine.rundir import RunDir

    status = RunDir(run_dir).read_json(RunDir.STATUS)
    if isinstance(status, dict) and status.get("stopped_early"):
        console.print(status.get("message", ""), markup=False, highlight=False, soft_wrap=True)
    summary = RunDir(run_dir).read_json(RunDir.SUMMARY)
    if summary and summary.get("best_epoch"):
        console.print(
            f"best validation epoch {summary['best_epoch']} (val {100 * summary['best_val_accuracy']:.2f}%): "
            f"test accuracy at it [bold]{100 * summary['test_accuracy_at_best']:.2f}%[/] (weights in best.pt)"
        )


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
