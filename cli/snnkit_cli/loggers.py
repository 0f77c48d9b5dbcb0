"""Experiment trackers for ``snnkit train --logger NAME``: the :class:`Logger` interface and its registry.

snnkit ships ``tensorboard``, ``mlflow`` and ``wandb`` (offline); a plugin adds its own with the
``register_loggers(register)`` hook, calling ``register(cls)`` with a :class:`Logger` subclass. Only the process
that trains (rank 0) logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snnkit_core.contract.errors import ConfigError

from .logger import Logger

__all__ = ["Logger", "available", "builtin", "flat_params", "open_loggers"]


def builtin() -> dict[str, type[Logger]]:
    from .mlflow_logger import MlflowLogger
    from .tensorboard import TensorBoardLogger
    from .wandb_logger import WandbLogger

    return {cls.name: cls for cls in (TensorBoardLogger, MlflowLogger, WandbLogger)}


def available() -> tuple[dict[str, tuple[type[Logger], str]], list[str]]:
    """Every logger by name -> (class, who provides it): snnkit's own, then each plugin's ``register_loggers``;
    and one message per plugin whose hook failed (its loggers are left out; the others still work)."""
    from snnkit_core.contract import plugins

    out = {name: (cls, "snnkit") for name, cls in builtin().items()}
    problems = []
    plugins.load_plugins()
    for impl, info in plugins.hook_impls("register_loggers"):
        if info.error:
            continue
        mine = {}

        def register(cls, _plugin=impl.plugin_name, _mine=mine):
            if not (isinstance(cls, type) and issubclass(cls, Logger) and cls.name):
                raise ConfigError(f"it registered {cls!r}, which is not a subclass of snnkit_cli.loggers.Logger "
                                  "with a non-empty `name`")
            if cls.name in out or cls.name in _mine:
                raise ConfigError(f"it registered the logger {cls.name!r}, which is already taken; rename it")
            _mine[cls.name] = (cls, _plugin)

        try:
            impl.function(register=register)
        except Exception as exc:  # a broken plugin must not stop a run that does not use its loggers
            problems.append(f"plugin {impl.plugin_name!r} failed to register its loggers: {plugins.short_error(exc)}")
        else:
            out.update(mine)
    return out, problems


def flat_params(cfg) -> dict[str, Any]:
    """The run's configuration as hyperparameters: ``neuron_params.tau_m`` -> 8.0; lists as text (``400,400``)."""
    from snnkit_core.engine.metrics import flatten

    def text_lists(value):
        if isinstance(value, dict):
            return {k: text_lists(v) for k, v in value.items()}
        return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value

    return flatten(text_lists(cfg.to_dict()))


def open_loggers(names: tuple[str, ...], run_dir: Path, cfg) -> list[Logger]:
    """One logger per distinct name, constructed now so an unknown name or a missing package fails before
    training."""
    if not names:
        return []
    known, problems = available()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown --logger {', '.join(map(repr, unknown))}; known loggers: "
                          f"{', '.join(sorted(known))}" + "".join(f"; {p}" for p in problems))
    params = flat_params(cfg)
    return [known[name][0](run_dir, params) for name in dict.fromkeys(names)]
