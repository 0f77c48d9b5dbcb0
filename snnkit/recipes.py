"""Recipes: what a component needs to learn, filled into a run's configuration where the user chose nothing.

A rule, neuron, connectivity or dataset declares ``recipe`` (a class attribute of
:class:`snnkit_core.contract.component.Component`): config keys (``neuron``, ``conn``, ``hidden``, ...) and
component parameters spelt as ``--set`` spells them (``neuron.v_th``, ``dataset.steps``, ``rule.st-rsbp.lr``).
:func:`fill_recipe` merges the recipes of a configuration's components into it, key by key, and never over a key
the user chose. ``snnkit train`` calls it with the keys given on the command line, by ``--set``, in ``--config``
or in the ``--preset``; a Python caller passes its own.

Order: the rules' recipes (in the order the rules are named), then the neuron's, the connectivity's and the
dataset's (as the rules' recipes left them); the first recipe to fill a key wins. A parameter is filled only when
the component of its section declares a parameter of that name and, when the same recipe names that component
(``neuron``, ``conn``, ``dataset``), only if the run uses that one: a recipe's ``neuron.v_th`` for ``lif-rsbp`` is
not applied to a neuron the user chose instead. A rule's ``lr`` / ``weight_decay`` parameter is not filled when
the user gave the run's ``lr`` / ``weight_decay``, which overrides it. A value equal to the one already there is
not counted as filled. A value that is itself a dict is a group of keys that only work together (e.g. a network
shape and the input it is built for): it is filled whole, or not at all when the user chose any of its keys or any
of them does not fit the run.
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
    """Fill ``cfg`` from the recipe of component ``kind`` ``name``: its single keys (config keys first: they decide
    the sections' components), then each group, all of whose keys are filled or none."""
    recipe = dict(getattr(_component(registry, kind, name), "recipe", None) or {})
    single = {k: v for k, v in recipe.items() if not isinstance(v, dict)}
    fill = _Filler(cfg, chosen, settled, filled, registry, single, f"{kind} {name}")
    for key in sorted(single, key=lambda k: "." in k):
        if key not in settled and fill.fits(key):
            fill.set(key, single[key])
    for group in (v for v in recipe.values() if isinstance(v, dict)):
        keys = sorted(group, key=lambda k: "." in k)
        if not any(k in settled for k in keys) and all(fill.fits(k) for k in keys):
            for key in keys:
                fill.set(key, group[key])


class _Filler:
    """Checks and fills the keys of one component's recipe (``names``: its single keys, which may name the
    components its parameters are for)."""

    def __init__(self, cfg: dict, chosen, settled: set, filled: dict, registry, names: dict, source: str):
        self.cfg, self.chosen, self.settled, self.filled = cfg, chosen, settled, filled
        self.registry, self.names, self.source = registry, names, source

    def fits(self, key: str) -> bool:
        """Whether ``key`` can be filled in this run: a config key always (an unknown one is the plugin's fault);
        a parameter when the run's component of its section declares it."""
        if "." in key:
            return self.default(key) is not _NONE
        if key not in self.cfg or key == "params":
            raise ConfigError(f"the recipe of {self.source} names {key!r}, which is not a config key; this is an "
                              f"issue with the plugin that registers it, not snnkit: spell parameters SECTION.KEY")
        return True

    def default(self, key: str):
        """The value parameter ``key`` has now (given, else the component's default), or ``_NONE`` if it does not
        fit this run."""
        section, _, param = key.rpartition(".")
        target = _target(self.cfg, self.chosen, self.registry, self.names, section, param)
        declared = {p.name: p.default for p in (target.params if target is not None else ())}
        return self.cfg["params"].get(section, {}).get(param, declared[param]) if param in declared else _NONE

    def set(self, key: str, value) -> None:
        self.settled.add(key)
        if _same(self.default(key) if "." in key else self.cfg[key], value):
            return
        if "." in key:
            section, _, param = key.rpartition(".")
            self.cfg["params"].setdefault(section, {})[param] = value
        else:
            self.cfg[key] = list(value) if isinstance(value, tuple) else value
        self.filled[key] = {"value": value, "from": self.source}


_NONE = object()


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


def show(recipe: dict[str, Any]) -> str:
    """A recipe on one line: ``key=value`` pairs, each group as ``[name: key=value ...]``."""
    return " ".join(f"[{k}: {show(v)}]" if isinstance(v, dict) else f"{k}={_show(v)}" for k, v in recipe.items())


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
