"""A new run's configuration from the command line: the config file (or the defaults), every option given, the
rules and the ``--set`` parameters; and the default run directory name."""

from __future__ import annotations

from typing import Any

from snnkit_core.contract.errors import ConfigError
from snnkit_core.engine.config import TrainConfig, absolute


def parse_sets(values) -> dict[str, dict]:
    """``["neuron.tau_m=8", "rule.bptt.surrogate=triangle"]`` -> ``{"neuron": {"tau_m": "8"}, "rule.bptt": {...}}``."""
    out: dict[str, dict] = {}
    for item in values:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError("--set wants SECTION.KEY=VALUE (e.g. neuron.tau_m=8, conn.init_scale=0.3, "
                              f"rule.bptt.surrogate=triangle); got {item!r}")
        key, value = item.split("=", 1)
        section, _, name = key.rpartition(".")
        out.setdefault(section, {})[name] = value
    return out


def new_config(config_file: str | None, options: dict[str, Any], rules: tuple[str, ...] = (), sets=(),
               preset: str | None = None) -> TrainConfig:
    """A new run's config: ``config_file`` or the shipped ``preset`` (or the defaults), then every option that was
    given (not None), the rules, and the ``--set`` parameters merged over the file's; paths made absolute."""
    if config_file and preset:
        raise ConfigError(f"--config {config_file} and --preset {preset} both give the starting config; give one "
                          f"(to change a preset, save it with snnkit presets {preset} > FILE, edit it, use --config)")
    if preset:
        from .presets import get

        cfg = get(preset).config()
    else:
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


def chosen_keys(config_file: str | None, options: dict[str, Any], rules=(), sets=(), preset: str | None = None
                ) -> set[str]:
    """The config keys and ``SECTION.KEY`` parameters the user chose: options given (not None), ``--rule``,
    ``--set``, and every key of the ``--config`` file or the ``--preset`` (a recipe fills in none of them)."""
    chosen = {k for k, v in options.items() if v is not None} | ({"rules"} if rules else set())
    chosen |= {f"{section}.{key}" for section, kv in parse_sets(sets).items() for key in kv}
    data: dict = {}
    if config_file:
        import tomllib

        with open(config_file, "rb") as f:  # new_config has read and checked it already
            data = tomllib.load(f)
        data = data.get("train", data)
    elif preset:
        from .presets import get

        data = get(preset).train
    chosen |= {k for k in data if k != "params"}
    chosen |= {f"{section}.{key}" for section, kv in (data.get("params") or {}).items() for key in kv}
    return chosen


def apply_recipes(cfg: TrainConfig, chosen: set[str]) -> tuple[TrainConfig, dict]:
    """``cfg`` with its components' recipes filled in where the key is not in ``chosen``, and what was filled
    (:func:`snnkit.recipes.fill_recipe`)."""
    from snnkit.recipes import fill_recipe

    data, filled = fill_recipe(cfg.to_dict(), chosen)
    return (TrainConfig.from_dict(data, source="a recipe") if filled else cfg), filled
