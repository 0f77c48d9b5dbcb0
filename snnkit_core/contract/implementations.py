"""Implementations: faster exact scans that plugins register (hook ``register_implementations(register)``),
keyed by the neuron name, the kind of recurrence (``"none"``/``"diagonal"`` for a whole layer; ``"span"``,
``"mixed"``, ``"chunk"`` for a recurrence's own scan, ``Recurrence.kinds``; any other kind is a rule's own, found with
:func:`find`) and the device type they accelerate. Each kind's call signature, and the rule that each must equal the
reference scan (identical spikes, gradients to rounding): docs/plugins.md, "Registering an implementation".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial

from attrs import frozen

from snnkit_core.contract.errors import RegistrationError


@frozen
class Implementation:
    """A faster exact scan (see the module doc); ``available`` / ``accepts`` None: always / every layer."""

    name: str
    neuron: str
    kind: str
    device: str
    scan: Callable
    backend: str = "torch"
    available: Callable[[], str | None] | None = None
    accepts: Callable[..., str | None] | None = None
    dtypes: tuple[str, ...] = ("float32", "float64")  # names of the torch dtypes it takes


_registered: dict[tuple[str, str, str], list[Implementation]] = {}
_availability: dict[Implementation, str | None] = {}
_owner: dict[tuple[str, str, str, str], str] = {}  # (neuron, kind, device, name) -> the plugin that registered it


def register(impl: Implementation, plugin: str = "") -> None:
    """Add ``impl`` (the callback the ``register_implementations`` hook gets); one of the same name and key from
    the same plugin is replaced (a plugin loaded again registers the same again), from another refused."""
    if not isinstance(impl, Implementation) or impl.backend not in ("torch", "triton"):
        raise RegistrationError(f"{impl!r} is not an Implementation with backend 'torch' or 'triton'")
    if (owner := _owner.setdefault((impl.neuron, impl.kind, impl.device, impl.name), plugin)) != plugin:
        raise RegistrationError(f"implementation {impl.name!r} of {impl.neuron!r} ({impl.kind}, {impl.device}) is "
                                f"registered by plugin {owner!r} already; plugin {plugin!r} cannot replace it")
    same = _registered.setdefault((impl.neuron, impl.kind, impl.device), [])
    same[:] = [i for i in same if i.name != impl.name] + [impl]


def candidates(neuron: str, kind: str, device: str) -> list[Implementation]:
    """The implementations registered for this key, Triton ones first, then in registration order."""
    return sorted(_registered.get((neuron, kind, device), ()), key=lambda i: i.backend != "triton")


def registered() -> list[Implementation]:
    """Every registered implementation (``snnkit info`` lists a component's)."""
    return [i for same in _registered.values() for i in same]


def unavailable(impl: Implementation) -> str | None:
    """Why ``impl`` cannot run in this process (None: it can); asked once, then remembered."""
    if impl not in _availability:
        try:
            _availability[impl] = impl.available() if impl.available else None
        except Exception as exc:  # noqa: BLE001 - a broken check means "not available", with its reason
            _availability[impl] = f"its availability check failed: {type(exc).__name__}: {exc}"
    return _availability[impl]


def forget_availability() -> None:
    """Ask every ``available()`` again on next use (tests that change the environment)."""
    _availability.clear()


def find(neuron: str, kind: str, device: str, backend: str = "torch") -> Implementation | None:
    """The first available implementation of ``backend`` for this key, or None (for rules' own kinds)."""
    return next((i for i in candidates(neuron, kind, device) if i.backend == backend and unavailable(i) is None),
                None)


def collect(pm, only: str | None = None, skip: frozenset | set = frozenset()) -> None:
    """Run each plugin's ``register_implementations`` hook (``only`` that plugin; none in ``skip``)."""
    for hook in pm.hook.register_implementations.get_hookimpls():
        if hook.plugin_name in skip or (only is not None and hook.plugin_name != only):
            continue
        try:
            hook.function(register=partial(register, plugin=hook.plugin_name))
        except Exception as exc:  # noqa: BLE001 - a plugin's broken hook leaves the reference scans working
            warnings.warn(f"plugin {hook.plugin_name!r} failed to register its implementations: {exc}", RuntimeWarning,
                          stacklevel=2)
