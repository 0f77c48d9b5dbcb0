"""Recipes: what a component needs to learn, filled into a run's configuration where the user chose nothing.

A rule, neuron, connectivity or dataset declares ``recipe`` (a class attribute of
:class:`snnkit_core.contract.component.Component`): config keys (``neuron``, ``conn``, ``hidden``, ...) and
component parameters spelt as ``--set`` spells them (``neuron.v_th``, ``dataset.steps``, ``rule.st-rsbp.lr``).
:func:`fill_recipe` merges the recipes of a configuration's components into it, key by key, and never over a key
the user chose. ``snnkit train`` calls it with the keys given on the command line, in ``--config`` or by ``--set``;
a Python caller passes its own.

Order: the rules' recipes (in the order the rules are named), then the neuron's, the connectivity's and the
dataset's (as the rules' recipes left them); the first recipe to fill a key wins. A parameter is filled only when
the component of its section declares a parameter of that name and, when the same recipe names that component
(``neuron``, ``conn``, ``dataset``), only if the run uses that one: a recipe's ``neuron.v_th`` for ``lif-rsbp`` is
not applied to a neuron the user chose instead. A rule's ``lr`` / ``weight_decay`` parameter is not filled when
the user gave the run's ``lr`` / ``weight_decay``, which overrides it. A value equal to the one already there is
not counted as filled.
"""

from __future__ import annotations

import copy
from typing import Any

from snnkit_core.contract.errors import ConfigError

#: section of a ``SECTION.KEY`` parameter -> (the config key that names the component, the registry kind)
SECTIONS = {"neuron": ("neuron", "neuron"), "conn": ("conn", "connectivity"), "dataset": ("dataset", "dataset")}
#: run-level keys that override a rule's parameter of the same name
OVERRIDES = ("lr", "weight_decay")


def fill_recipe(config: dict[str, Any], chosen: set[str] | frozenset[str], registry=None
                ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``config`` (a ``TrainConfig.to_dict()``) with its components' recipes filled in where the key is not in
    ``chosen`` (config keys and ``SECTION.KEY`` names). Returns the new config (``config`` is not changed) and
    what was filled: ``{key: {"value": value, "from": "rule st-rsbp"}}`` in the order filled. Unknown component
    names are left for the build to refuse; a recipe key that is not a config key raises :class:`ConfigError`."""
    if registry is None:
        from snnkit_core.contract.plugins import get_registry

        registry = get_registry()
    cfg = copy.deepcopy(config)
    cfg["params"] = {k: dict(v) for k, v in (cfg.get("params") or {}).items()}
    filled: dict[str, dict[str, Any]] = {}
    settled = set(chosen)  # chosen, or named by an earlier recipe (filled or already equal)
    for rule in tuple(cfg.get("rules") or ()):
        _apply(cfg, chosen, settled, filled, registry, "rule", rule)
    for key, kind in SECTIONS.values():
        _apply(cfg, chosen, settled, filled, registry, kind, cfg.get(key))
    return cfg, filled


def _component(registry, kind: str, name) -> type | None:
    return registry.get(kind, name) if isinstance(name, str) and name in registry.names(kind) else None


def _apply(cfg: dict, chosen, settled: set, filled: dict, registry, kind: str, name) -> None:
    cls = _component(registry, kind, name)
    recipe = dict(getattr(cls, "recipe", None) or {})
    source = f"{kind} {name}"
    for key in sorted(recipe, key=lambda k: "." in k):  # config keys first: they decide the sections' components
        if key in settled:
            continue
        value = recipe[key]
        if "." not in key:
            if key not in cfg or key == "params":
                raise ConfigError(f"the recipe of {source} names {key!r}, which is not a config key; this is an issue "
                                  f"with the plugin that registers {name!r}, not snnkit: spell parameters SECTION.KEY")
            settled.add(key)
            if _same(cfg[key], value):
                continue
            cfg[key] = list(value) if isinstance(value, tuple) else value
        else:
            section, _, param = key.rpartition(".")
            target = _target(cfg, chosen, registry, recipe, section, param)
            declared = {p.name: p.default for p in (target.params if target is not None else ())}
            if param not in declared:
                continue
            settled.add(key)
            if _same(cfg["params"].get(section, {}).get(param, declared[param]), value):
                continue
            cfg["params"].setdefault(section, {})[param] = value
        filled[key] = {"value": value, "from": source}


def _target(cfg: dict, chosen, registry, recipe: dict, section: str, param: str) -> type | None:
    """The run's component that the parameter ``section.param`` of ``recipe`` is for, or None when it does not
    fit this run (a section of no component here, a component other than the recipe's, an overridden lr)."""
    if section.startswith("rule."):
        rule = section[len("rule."):]
        if rule not in (cfg.get("rules") or ()) or (param in OVERRIDES and param in chosen):
            return None
        return _component(registry, "rule", rule)
    if section not in SECTIONS:
        return None
    key, kind = SECTIONS[section]
    if key in recipe and recipe[key] != cfg.get(key):
        return None  # written for another component than the one this run uses
    return _component(registry, kind, cfg.get(key))


def _same(a, b) -> bool:
    return _plain(a) == _plain(b)


def _plain(v):
    return list(v) if isinstance(v, (tuple, list)) else v


def describe(filled: dict[str, dict[str, Any]]) -> str:
    """One line: what the recipes filled in, and how to choose otherwise."""
    sources = sorted({f["from"] for f in filled.values()})
    values = " ".join(f"{k}={_show(f['value'])}" for k, f in filled.items())
    return (f"recipe of {', '.join(sources)} filled in: {values} (give any of them, as an option or with --set, "
            "to choose otherwise)")


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
