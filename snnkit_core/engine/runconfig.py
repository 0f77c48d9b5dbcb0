"""The configuration of a ``snnkit train`` invocation: a new run's config from a file, options and ``--set``s,
or a resumed run's config with only what may move (data folder, device, backend) changed.

The CLI parses options into plain values and calls these; everything that decides or writes lives here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from snnkit_core.engine.config import TrainConfig, dump_toml
from snnkit_core.contract.errors import ConfigError

#: options that may differ on --resume: where the data is and what computes, never the maths
MAY_MOVE = ("data_dir", "device", "backend")


def absolute(path: str) -> str:
    """``path`` with ``~`` expanded, made absolute (a config must rerun from any working directory)."""
    return str(Path(path).expanduser().absolute())


def parse_sets(values) -> dict[str, dict]:
    """``["neuron.tau_m=8", "rule.bptt.surrogate=triangle"]`` -> ``{"neuron": {"tau_m": "8"}, "rule.bptt": {...}}``."""
    out: dict[str, dict] = {}
    for item in values:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set wants SECTION.KEY=VALUE (e.g. neuron.tau_m=8, conn.init_scale=0.3, rule.bptt.surrogate=triangle); got {item!r}")
        key, value = item.split("=", 1)
        section, _, name = key.rpartition(".")
        out.setdefault(section, {})[name] = value
    return out


def new_config(config_file: str | None, options: dict[str, Any], rules: tuple[str, ...] = (), sets=()) -> TrainConfig:
    """A new run's config: ``config_file`` (or the defaults), then every option that was given (not None), the
    rules, and the ``--set`` parameters merged over the file's; paths made absolute."""
    cfg = TrainConfig.from_toml(config_file) if config_file else TrainConfig()
    changes = {k: v for k, v in options.items() if v is not None}
    if rules:
        changes["rules"] = tuple(rules)
    extra = parse_sets(sets)
    if extra:
        params = {k: dict(v) for k, v in cfg.params.items()}
        for section, kv in extra.items():
            params.setdefault(section, {}).update(kv)
        changes["params"] = params
    cfg = cfg.evolve(**changes)
    for key in ("data_dir", "init_from"):
        if getattr(cfg, key):
            cfg = cfg.evolve(**{key: absolute(getattr(cfg, key))})
    return cfg


def resume_config(run_dir: str | Path, given: dict[str, Any], moved: dict[str, Any], write: bool = True) -> TrainConfig:
    """The config of the run in ``run_dir`` to resume. ``given``: the other options the user gave (option name
    -> value): any that is set is refused, since a resume continues the run exactly. ``moved``: new values of
    :data:`MAY_MOVE` keys (None: unchanged), written back to its config.toml when ``write`` (rank 0)."""
    from snnkit_core.engine import rundir
    from snnkit_core.engine.training import read_run_config

    run_dir = Path(run_dir)
    named = [f"--{k.replace('_', '-')}" for k, v in given.items() if v not in (None, (), [])]
    if named:
        raise ConfigError(
            f"--resume continues {run_dir} exactly as its config.toml says, so {', '.join(named)} cannot apply. "
            f"To train a changed copy, start a new run from its config with the options you want: "
            f"snnkit train --config {run_dir / 'config.toml'} --out NEW_DIR {' '.join(g + ' ...' for g in named)}"
            f" (add --init-from {run_dir} to start from its weights)"
        )
    cfg = read_run_config(run_dir)
    changes = {k: v for k, v in moved.items() if v}
    if changes.get("data_dir"):
        changes["data_dir"] = absolute(changes["data_dir"])
    if changes:
        cfg = cfg.evolve(**changes)
        if write:
            rundir.atomic_write_text(run_dir / "config.toml", dump_toml({"train": cfg.to_dict()}))
    return cfg


def completed(run_dir: str | Path, cfg: TrainConfig) -> str | None:
    """Why there is nothing to resume when every epoch of ``run_dir`` is done (with how to train further), else None."""
    from snnkit_core.engine.training import load_checkpoint

    run_dir = Path(run_dir)
    if int(load_checkpoint(run_dir)["epoch"]) + 1 < cfg.epochs:
        return None
    return (f"{run_dir} is complete: all {cfg.epochs} epochs are done, nothing to resume. To train further, start "
            f"a new run from its weights: snnkit train --config {run_dir / 'config.toml'} --init-from {run_dir} "
            f"--epochs N --out NEW_DIR")


def default_run_name(cfg: TrainConfig, suffix: str = "") -> str:
    """``runs/<time>-<neuron>-<conn>-<rules>-<dataset><suffix>``'s last part."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.neuron}-{cfg.conn}-{'+'.join(cfg.rules)}-{cfg.dataset}{suffix}"
