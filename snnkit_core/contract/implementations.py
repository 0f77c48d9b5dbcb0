"""Implementations: faster exact scans that plugins register, keyed by what they accelerate.

An :class:`Implementation` speeds up one neuron (by name) with one kind of recurrence on one device type. Its
``kind`` says what it computes and how its ``scan`` is called:

* ``"none"`` / ``"diagonal"``: a whole layer without recurrence / with a per-neuron recurrent weight,
  ``scan(neuron, current, recurrence) -> (y, s)`` each (T, B, N); the network runs it as the layer's scan;
* ``"span"``: ``scan(neuron, current, weight, k)``, the recurrent input ``weight @ y[t-k]`` (SRC; ``dense``
  is k = 1); ``"mixed"``: ``scan(neuron, current, weight, alpha, chunk)``, the recurrent input
  ``weight @ Σ_j alpha[j-1] y[t-j]`` (ASRC in training); ``"chunk"``: ``scan(neuron, current, state) ->
  (y, s, state)`` for L steps from ``state``. A recurrence's own ``scan`` calls these (see ``Recurrence.kinds``);
* any other kind a rule defines and finds with :func:`find` (e.g. ``tssl-bp-forward``).

``name`` says what runs ("c-kernel", "torch-loop", "triton"); ``backend`` is ``"triton"`` (GPU kernels, used under
``--backend auto|triton``) or ``"torch"`` (used under ``auto|torch``). ``available()`` says whether it can run in
this process at all; it is asked once per process and the answer kept. ``accepts(layer)`` says whether it
takes a layer (its neuron's settings, its recurrence); ``dtypes`` names the input types it takes. Both answer None for
yes, else the reason in plain words. Every implementation must equal the reference scan
(:func:`snnkit_core.contract.scan.reference_scan`): identical spikes, gradients to rounding.
Plugins register them with the ``register_implementations(register)`` hook.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from attrs import frozen

from snnkit_core.contract.errors import RegistrationError


def _yes(*_args) -> None:
    return None


@frozen
class Implementation:
    name: str
    neuron: str
    kind: str
    device: str
    scan: Callable
    backend: str = "torch"
    available: Callable[[], str | None] = _yes
    accepts: Callable[..., str | None] = _yes
    dtypes: tuple[str, ...] = ("float32", "float64")  # names of the torch dtypes it takes


_registered: dict[tuple[str, str, str], list[Implementation]] = {}
_availability: dict[Implementation, str | None] = {}


def register(impl: Implementation) -> None:
    """Add ``impl`` (the callback the ``register_implementations`` hook gets); one of the same name and key
    is replaced (a plugin loaded again registers the same again)."""
    if not isinstance(impl, Implementation) or impl.backend not in ("torch", "triton"):
        raise RegistrationError(f"{impl!r} is not an Implementation with backend 'torch' or 'triton'")
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
            _availability[impl] = impl.available()
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
            hook.function(register=register)
        except Exception as exc:  # noqa: BLE001 - a plugin's broken hook leaves the reference scans working
            warnings.warn(f"plugin {hook.plugin_name!r} failed to register its implementations: {exc}", RuntimeWarning)
