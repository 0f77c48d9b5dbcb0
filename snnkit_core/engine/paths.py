"""Scan paths: which implementation runs each spiking layer's scan, chosen once when the network is planned
(at assembly; again only when its backend, rules, device or dtype change). The default path, from ``--backend``:
``reference`` (``reference_scan``, the oracle; also when a rule records neuron state); else the first registered
implementation (:mod:`snnkit_core.contract.implementations`) for the layer's neuron, recurrence (``"none"`` or its
``structure``) and device that the backend allows, is available and accepts the layer (Triton: ``fused``, else
``fast``); else the recurrence's own ``scan`` given the implementations of its ``kinds`` (``connectivity``,
``+kernel`` when a Triton one runs); else ``reference``. Then each rule's ``layer_scan`` may wrap or replace it.
At run time an implementation that cannot take a call is an error under an explicit backend; under ``auto`` the
layer runs its fallback, and the event goes to ``Network.plan_events`` and a warning (docs/performance.md).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence

import torch
from attrs import define, frozen

from snnkit_core.contract import implementations as impls
from snnkit_core.contract.errors import ConfigError, IncompatibleError
from snnkit_core.contract.interfaces import Recurrence
from snnkit_core.contract.plugins import get_registry
from snnkit_core.contract.scan import reference_scan

BACKENDS = ("auto", "triton", "torch", "reference")


@frozen
class LayerPlan:
    """One layer's scan: ``path`` names it (as in the manifest), ``implementation`` says what runs, ``skipped``
    the faster ones passed over as ``(name, reason, unavailable)`` (unavailable: it cannot run in this process)."""

    path: str
    scan: Callable
    implementation: str = "reference"
    skipped: tuple = ()


def reference_layer_scan(layer, current, record: tuple[str, ...] = ()):
    return reference_scan(layer.neuron, current, layer.recurrence, record)


def _connectivity(layer, current, kernels=None):
    return layer.recurrence.scan(layer.neuron, current, kernels)


@define(eq=False)
class Guarded:
    """A planned implementation at run time. ``fallback`` (layer, current) -> result for a whole-layer one; None
    for a recurrence's kernel, which then returns None (the recurrence runs its own code)."""

    impl: impls.Implementation
    dtypes: frozenset
    where: str
    strict: str | None  # the explicit backend, None under auto
    events: list
    fallback: Callable | None = None
    failed: str | None = None

    def __call__(self, first, current, *args):
        if self.failed is None and current.dtype in self.dtypes:
            try:
                return self._run(first, current, args)
            except Exception as exc:  # noqa: BLE001 - a kernel's compile or launch failure (the backward cannot fall back)
                if self.impl.backend != "triton":
                    raise
                self.failed = f"it failed ({type(exc).__name__}: {exc})"
        msg = f"{self.where}: {self.impl.name} ({self.impl.backend}) did not run: " + (
            self.failed or f"it takes no {current.dtype} input")
        if self.strict is not None:
            raise IncompatibleError(f"--backend {self.strict}: {msg}, and this backend allows no fallback. Use "
                                    f"--backend auto to fall back with a warning.")
        if msg not in self.events:
            self.events.append(msg)
            warnings.warn(f"{msg}; running the torch scan for it instead", RuntimeWarning, stacklevel=3)
        return None if self.fallback is None else self.fallback(first, current)

    def _run(self, first, current, args):
        if self.fallback is None:
            return self.impl.scan(first, current, *args)
        return self.impl.scan(first.neuron, current, first.recurrence)


def has_own_scan(recurrence: Recurrence | None) -> bool:
    """The recurrence overrides ``Recurrence.scan`` with a faster exact scan."""
    return recurrence is not None and type(recurrence).scan is not Recurrence.scan


def _resolve(layer, kind: str, backend: str, device: torch.device, dtype: str, skipped: list):
    """The first implementation of ``kind`` this layer may run, or None; the others tried go to ``skipped``."""
    for impl in impls.candidates(layer.neuron.name, kind, device.type):
        gone = impls.unavailable(impl) if backend in ("auto", impl.backend) else None
        why = gone if backend in ("auto", impl.backend) else f"--backend {backend}"
        if why is None and dtype not in impl.dtypes:
            why = f"it takes {'/'.join(impl.dtypes)} input, not {dtype}"
        if (why := why or (impl.accepts(layer) if impl.accepts else None)) is None:
            return impl
        skipped.append((impl.name, why, gone is not None))
    return None


def _kernels(layer, backend, device, dtype, skipped, guard) -> dict:
    """The implementations of the recurrence's ``kinds``; a Triton one (a chunk kernel) runs the layer alone."""
    kinds = layer.recurrence.kinds if has_own_scan(layer.recurrence) else ()
    found = {k: guard(i) for k in kinds if (i := _resolve(layer, k, backend, device, dtype, skipped)) is not None}
    if any(g.impl.backend == "triton" for g in found.values()):
        skipped += [(g.impl.name, "a Triton kernel runs this layer", False) for g in found.values()
                    if g.impl.backend != "triton"]
        found = {k: g for k, g in found.items() if g.impl.backend == "triton"}
    return found


def default_plan(layer, backend: str, device: torch.device, record: tuple[str, ...] = (), dtype: str = "float32",
                 where: str = "", events: list | None = None) -> LayerPlan:
    """The path ``backend`` gives ``layer`` on ``device`` for ``dtype`` input before any rule acts."""
    n, rec = layer.neuron, layer.recurrence
    if backend == "triton" and record:
        raise IncompatibleError(f"--backend triton: a rule records the state of neuron {n.name!r}, which only the "
                                f"reference scan gives (no fused kernel does). Use --backend torch.")
    if backend == "reference" or record:
        return LayerPlan("reference", functools.partial(reference_layer_scan, record=record))
    skipped: list = []

    def guard(impl, fallback=None):
        return Guarded(impl, frozenset(getattr(torch, d) for d in impl.dtypes), where,
                       None if backend == "auto" else backend, [] if events is None else events, fallback)

    kernels = _kernels(layer, backend, device, dtype, skipped, guard)
    fallback = functools.partial(_connectivity, kernels=kernels) if has_own_scan(rec) else reference_layer_scan
    impl = _resolve(layer, "none" if rec is None else rec.structure, backend, device, dtype, skipped)
    if impl is not None:
        path = "fused" if impl.backend == "triton" else "fast"
        plan = LayerPlan(path, guard(impl, fallback), impl.name, tuple(skipped))
    elif has_own_scan(rec):
        first = kernels.get(rec.kinds[0]) if rec.kinds else None
        lead = first or next(iter(kernels.values()), None)
        name = "chunked" if lead is None else lead.impl.name if first else f"chunked+{lead.impl.name}"
        kernel = lead is not None and lead.impl.backend == "triton"
        plan = LayerPlan("connectivity+kernel" if kernel else "connectivity", fallback, name, tuple(skipped))
    else:
        plan = LayerPlan("reference", fallback, "reference", tuple(skipped))
    if backend == "triton" and plan.path not in ("fused", "connectivity+kernel"):
        why = "; ".join(f"{i}: {w}" for i, w, _ in skipped if w != "--backend triton") or "none is registered"
        raise IncompatibleError(f"--backend triton: no Triton kernel of neuron {n.name!r} runs this layer (recurrence "
                                f"{getattr(rec, 'structure', 'none')}, {device.type}, {dtype}): {why}. Use --backend "
                                f"auto or torch.")
    return plan


def check_backend(backend: str, rules: Sequence = ()) -> None:
    """Refuse a ``backend`` that is not one of :data:`BACKENDS`, or that a rule's own scan would override."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be auto, triton, torch or reference; got {backend!r}")
    for rule in [r for r in rules if r.owns_scan and backend in ("triton", "reference")]:
        raise IncompatibleError(f"rule {rule.name!r} runs its own scan for every layer, so --backend {backend} would "
                                f"be ignored; use --backend auto or torch with {rule.name}")


def plan_network(network, backend: str, rules: Sequence = (), device: torch.device | None = None) -> list[LayerPlan]:
    """One :class:`LayerPlan` per spiking layer of ``network`` (hidden layers, then a spiking output layer): the
    default path, then each rule's ``layer_scan`` in order (the gradient rule, then add-ons)."""
    check_backend(backend, rules)
    get_registry()  # the plugins' implementations are registered with their components
    first = next(network.parameters())
    device, dtype = first.device if device is None else device, str(first.dtype).removeprefix("torch.")
    record, plans = tuple(dict.fromkeys(f for r in rules for f in r.record_state)), []
    for name, layer in zip(network.layer_names(), network.spiking_layers()):
        plan = default_plan(layer, backend, device, record, dtype, name, network.plan_events)
        for rule in rules:
            if (scan := rule.layer_scan(layer, plan.scan)) is not None:
                path = f"rule:{rule.name}" if rule.owns_scan else f"{plan.path}>rule:{rule.name}"
                plan = LayerPlan(path, scan, path if rule.owns_scan else plan.implementation, plan.skipped)
        plans.append(plan)
    return plans
