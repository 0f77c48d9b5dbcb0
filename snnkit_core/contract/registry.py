"""The component registry: which plugin registered which neuron, connectivity, rule and dataset."""

from __future__ import annotations

import re

from attrs import define, field, frozen

from snnkit_core.contract.errors import RegistrationError, UnknownComponentError


def _kinds() -> dict[str, type]:
    """kind -> base class; imported on first registration (the interfaces import torch)."""
    from snnkit_core.contract.interfaces import Connectivity, Dataset, LearningRule, Neuron

    return {"neuron": Neuron, "connectivity": Connectivity, "rule": LearningRule, "dataset": Dataset}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@frozen
class Component:
    kind: str
    name: str
    cls: type
    plugin: str


@define
class Registry:
    _items: dict[tuple[str, str], Component] = field(factory=dict)
    #: (kind, name) -> why it is missing: a broken plugin would have provided it
    _unavailable: dict[tuple[str, str], str] = field(factory=dict)

    def mark_unavailable(self, kind: str, name, plugin: str, reason: str) -> None:
        """Remember that ``plugin`` would have provided ``kind`` ``name`` but is not loaded, and why."""
        if isinstance(name, str) and name:
            self._unavailable.setdefault((kind, name), f"plugin {plugin!r} would provide it but is not loaded: {reason}")

    def register(self, kind: str, cls: type, plugin: str) -> None:
        base = _kinds()[kind]
        if not isinstance(cls, type) or not issubclass(cls, base):
            raise RegistrationError(
                f"plugin {plugin!r} registered {cls!r} as a {kind}, but it is not a subclass of "
                f"snnkit_core.{base.__name__}. This is an issue with plugin {plugin!r}, not snnkit."
            )
        name = getattr(cls, "name", "")
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistrationError(
                f"plugin {plugin!r} registered {kind} class {cls.__name__} with invalid name {name!r}: names are "
                f"lower-case letters, digits, '-', '_' and '.'. This is an issue with plugin {plugin!r}, not snnkit."
            )
        key = (kind, name)
        if key in self._items:
            other = self._items[key]
            if other.cls is cls:
                return  # idempotent re-registration of the very same class
            raise RegistrationError(
                f"{kind} {name!r} is registered twice: by plugin {other.plugin!r} and by plugin {plugin!r}. "
                f"Uninstall one of them, or load only one with SNNKIT_LOAD_PLUGINS."
            )
        self._items[key] = Component(kind, name, cls, plugin)

    def unavailable(self, kind: str, name: str) -> str:
        """Why ``kind`` ``name`` is missing when a broken plugin would have provided it, else ''."""
        return self._unavailable.get((kind, name), "")

    def unregister_plugin(self, plugin: str) -> None:
        for key in [k for k, c in self._items.items() if c.plugin == plugin]:
            del self._items[key]

    def get(self, kind: str, name: str) -> type:
        return self.component(kind, name).cls

    def component(self, kind: str, name: str) -> Component:
        try:
            return self._items[(kind, name)]
        except KeyError:
            raise UnknownComponentError(kind, name, self.names(kind), note=self._unavailable.get((kind, name), "")) from None

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self._items if k == kind)

    def find(self, name: str) -> list[Component]:
        """Every component called ``name``, of any kind."""
        return [c for (k, n), c in sorted(self._items.items()) if n == name]

    def all(self) -> list[Component]:
        return [c for _, c in sorted(self._items.items())]

    def by_plugin(self, plugin: str) -> list[Component]:
        return [c for c in self.all() if c.plugin == plugin]
