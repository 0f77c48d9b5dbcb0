"""The component registry: which plugin registered which neuron, connectivity, rule and dataset."""

from __future__ import annotations

import re

from attrs import define, field, frozen

from snnkit_core.contract.compat import undeclared
from snnkit_core.contract.errors import RegistrationError, UnknownComponentError

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _kinds() -> dict[str, type]:
    """kind -> base class; imported on first registration (the interfaces import torch, which start-up avoids)."""
    from snnkit_core.contract.interfaces import Connectivity, Dataset, LearningRule, Neuron

    return {"neuron": Neuron, "connectivity": Connectivity, "rule": LearningRule, "dataset": Dataset}


@frozen
class Component:
    """A registered component: its kind, name, class and the plugin that registered it."""

    kind: str
    name: str
    cls: type
    plugin: str


@define
class Registry:
    _items: dict[tuple[str, str], Component] = field(factory=dict)
    _unavailable: dict[tuple[str, str], str] = field(factory=dict)

    def mark_unavailable(self, kind: str, name, plugin: str, why: str) -> None:
        """Remember (``_unavailable``) that ``plugin`` would provide ``kind`` ``name`` but is not loaded, and why."""
        if isinstance(name, str) and name:
            self._unavailable.setdefault((kind, name), f"plugin {plugin!r} would provide it but is not loaded: {why}")

    def register(self, kind: str, cls: type, plugin: str) -> None:
        """Add ``cls``; a wrong type, a bad name, a duplicate or an undeclared capability raises RegistrationError."""
        kinds = _kinds()
        fault = f"This is an issue with plugin {plugin!r}, not snnkit."
        if not isinstance(cls, type) or not issubclass(cls, kinds[kind]):
            raise RegistrationError(f"plugin {plugin!r} registered {cls!r} as a {kind}, but it is not a subclass of "
                                    f"snnkit_core.{kinds[kind].__name__}. {fault}")
        name = getattr(cls, "name", "")
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistrationError(f"plugin {plugin!r} registered {kind} class {cls.__name__} with invalid name "
                                    f"{name!r}: names are lower-case letters, digits, '-', '_' and '.'. {fault}")
        if kind == "rule":
            problems = undeclared(cls.compatibility, kinds["neuron"])
            if problems:
                raise RegistrationError(f"plugin {plugin!r} registered rule {name!r}. {' '.join(problems)} {fault}")
        other = self._items.get((kind, name))
        if other is not None and other.cls is not cls:
            raise RegistrationError(f"{kind} {name!r} is registered twice: by plugin {other.plugin!r} and by plugin "
                                    f"{plugin!r}. Uninstall one of them, or load only one with SNNKIT_LOAD_PLUGINS.")
        self._items[(kind, name)] = Component(kind, name, cls, plugin) if other is None else other

    def unavailable(self, kind: str, name: str) -> str:
        """Why ``kind`` ``name`` is missing when a broken plugin would have provided it, else ''."""
        return self._unavailable.get((kind, name), "")

    def unregister_plugin(self, plugin: str) -> None:
        for key in [k for k, c in self._items.items() if c.plugin == plugin]:
            del self._items[key]

    def get(self, kind: str, name: str) -> type:
        return self.component(kind, name).cls

    def component(self, kind: str, name: str) -> Component:
        if (kind, name) not in self._items:
            raise UnknownComponentError(kind, name, self.names(kind), note=self.unavailable(kind, name))
        return self._items[(kind, name)]

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self._items if k == kind)

    def find(self, name: str) -> list[Component]:
        """Every component called ``name``, of any kind."""
        return [c for (k, n), c in sorted(self._items.items()) if n == name]

    def all(self) -> list[Component]:
        return [c for _, c in sorted(self._items.items())]

    def by_plugin(self, plugin: str) -> list[Component]:
        return [c for _, c in sorted(self._items.items()) if c.plugin == plugin]
