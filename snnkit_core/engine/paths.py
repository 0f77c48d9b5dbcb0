"""Scan paths: which implementation runs each spiking layer's scan, chosen once when the network is planned.

A layer's scan maps its input current (T, B, N) to ``(y, s)`` (or ``(y, s, extra)`` with recorded state). The
plan is made when the network is assembled and again only when its backend, rules, device or dtype change
(``Network.plan``), never per call. For each layer, in order:

1. the default path, from ``--backend``:

   * ``reference``: the plain step loop of :func:`snnkit_core.contract.scan.reference_scan` (the oracle); also
     whenever a rule records neuron state (``record_state``);
   * ``fused`` / ``fast``: the first implementation registered for the layer's neuron, recurrence (``"none"`` or
     its ``structure``) and device (:mod:`snnkit_core.contract.implementations`) that the backend allows
     (Triton ones under ``auto``/``triton``: ``fused``; the others under ``auto``/``torch``: ``fast``), that is
     available in this process and that accepts the layer;
   * ``connectivity``: the recurrence's own exact ``scan`` (e.g. SRC's k steps per product), given the
     implementations of its ``kinds`` chosen the same way, with ``+kernel`` when one of them is Triton;
   * ``reference`` again where none of these applies.

   Every implementation passed over is kept with the reason (``LayerPlan.skipped``, ``Network.plan_report``);
2. then each rule's ``layer_scan(layer, default)`` in order (the gradient rule, then add-ons), each getting
   the scan chosen so far, which it may wrap or replace; the path name gains ``rule:NAME``.

``--backend triton`` on a layer whose path runs no kernel, and ``--backend triton|reference`` under a rule
that owns the scan (``owns_scan``), are refused here with a message that says so. At run time a planned
implementation that cannot take a call (an input type it does not take, a kernel that fails to compile or
launch) is an error under an explicit backend; under ``auto`` the layer runs its fallback (the recurrence's
own scan or the reference) and the event is kept in ``Network.plan_events`` and warned once.
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
    """The chosen scan of one layer: ``path`` names it (recorded in the manifest, printed by ``snnkit bench``),
    ``implementation`` says what runs, ``skipped`` the faster ones passed over, as ``(name, reason, unavailable)``."""

    path: str
    scan: Callable
    implementation: str = "reference"
    skipped: tuple = ()


def reference_layer_scan(layer, current, record: tuple[str, ...] = ()):
    return reference_scan(layer.neuron, current, layer.recurrence, record)


def _reference(record: tuple[str, ...]) -> Callable:
    """The reference scan recording ``record`` (a partial of a module function, so a plan can be pickled)."""
    return functools.partial(reference_layer_scan, record=record)


def _connectivity(layer, current, kernels=None):
    return layer.recurrence.scan(layer.neuron, current, kernels)


@define(eq=False)
class Guarded:
    """A planned implementation at run time: runs it, or handles a call it cannot take (see the module doc).
    ``fallback`` (layer, current) -> result for a whole-layer one; None for a recurrence's kernel, which then
    returns None (the recurrence runs its own code)."""

    impl: impls.Implementation
    dtypes: frozenset
    where: str
    strict: str | None
    events: list
    fallback: Callable | None = None
    failed: str | None = None

    def __call__(self, first, current, *args):
        if self.failed is None and current.dtype in self.dtypes:
            if self.impl.backend != "triton":
                return self._run(first, current, args)
            try:
                return self._run(first, current, args)
            except Exception as exc:  # noqa: BLE001 - a compile or launch failure (the backward cannot fall back)
                self.failed = f"it failed ({type(exc).__name__}: {exc})"
        self._fall(self.failed or f"it takes no {current.dtype} input")
        return None if self.fallback is None else self.fallback(first, current)

    def _run(self, first, current, args):
        if self.fallback is None:
            return self.impl.scan(first, current, *args)
        return self.impl.scan(first.neuron, current, first.recurrence)

    def _fall(self, reason: str) -> None:
        msg = f"{self.where}: {self.impl.name} ({self.impl.backend}) did not run: {reason}"
        if self.strict is not None:
            raise IncompatibleError(f"--backend {self.strict}: {msg}, and this backend allows no fallback (no fused "
                                    f"kernel or fast scan takes it). Use --backend auto to fall back with a warning.")
        if msg not in self.events:
            self.events.append(msg)
            warnings.warn(f"{msg}; running the torch scan for it instead", RuntimeWarning, stacklevel=4)


def has_own_scan(recurrence: Recurrence | None) -> bool:
    """The recurrence overrides ``Recurrence.scan`` with a faster exact scan."""
    return recurrence is not None and type(recurrence).scan is not Recurrence.scan


def _resolve(layer, kind: str, backend: str, device: torch.device, dtype: str, skipped: list):
    """The first implementation of ``kind`` this layer may run, or None; each one passed over goes to
    ``skipped`` as ``(name, reason, unavailable)`` (``unavailable``: it cannot run in this process at all)."""
    for impl in impls.candidates(layer.neuron.name, kind, device.type):
        gone = impls.unavailable(impl) if backend in ("auto", impl.backend) else None
        why = f"--backend {backend}" if backend not in ("auto", impl.backend) else gone
        if why is None and dtype not in impl.dtypes:
            why = f"it takes {'/'.join(impl.dtypes)} input, not {dtype}"
        why = why or impl.accepts(layer)
        if why is None:
            return impl
        skipped.append((impl.name, why, gone is not None))
    return None


def _kernels(layer, backend, device, dtype, skipped, guard) -> dict:
    """The implementations of the recurrence's ``kinds``; a Triton one (a chunk kernel) runs the layer alone."""
    found = {}
    for kind in layer.recurrence.kinds if has_own_scan(layer.recurrence) else ():
        if (impl := _resolve(layer, kind, backend, device, dtype, skipped)) is not None:
            found[kind] = guard(impl)
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
        return LayerPlan("reference", _reference(record))
    skipped: list = []
    events = events if events is not None else []

    def guard(impl, fallback=None):
        return Guarded(impl, frozenset(getattr(torch, d) for d in impl.dtypes), where,
                       None if backend == "auto" else backend, events, fallback)

    kernels = _kernels(layer, backend, device, dtype, skipped, guard)
    fallback = functools.partial(_connectivity, kernels=kernels) if has_own_scan(rec) else _reference(())
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
        raise IncompatibleError(
            f"--backend triton: neuron {n.name!r} has no fused kernel for this layer (recurrence "
            f"{getattr(rec, 'structure', 'none')}, device {device.type}, {dtype}): "
            f"{'; '.join(f'{i}: {why}' for i, why, _ in skipped) or 'no Triton implementation is registered'}. Triton "
            f"runs on CUDA (or on CPU under its interpreter: TRITON_INTERPRET=1 and SNNKIT_TRITON_ON_CPU=1). "
            f"Use --backend torch."
        )
    return plan


def check_backend(backend: str, rules: Sequence = ()) -> None:
    """Refuse a ``backend`` that is not one of :data:`BACKENDS`, or that a rule's own scan would override."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be auto, triton, torch or reference; got {backend!r}")
    for rule in rules:
        if rule.owns_scan and backend in ("triton", "reference"):
            raise IncompatibleError(
                f"rule {rule.name!r} runs its own scan for every layer, so --backend {backend} would be ignored; "
                f"use --backend auto or torch with {rule.name}"
            )


def plan_layer(layer, backend: str, device: torch.device, rules: Sequence = (), **where) -> LayerPlan:
    """The default path, then each rule's ``layer_scan`` in order (see the module docstring); ``where``:
    ``dtype``, ``where`` (the layer's name) and ``events`` for :func:`default_plan`."""
    check_backend(backend, rules)
    record = tuple(dict.fromkeys(f for r in rules for f in r.record_state))
    plan = default_plan(layer, backend, device, record, **where)
    for rule in rules:
        scan = rule.layer_scan(layer, plan.scan)
        if scan is None:
            continue
        path = f"rule:{rule.name}" if rule.owns_scan else f"{plan.path}>rule:{rule.name}"
        plan = LayerPlan(path, scan, path if rule.owns_scan else plan.implementation, plan.skipped)
    return plan


def plan_network(network, backend: str, rules: Sequence = (), device: torch.device | None = None) -> list[LayerPlan]:
    """One :class:`LayerPlan` per spiking layer of ``network`` (hidden layers, then a spiking output layer)."""
    check_backend(backend, rules)
    get_registry()  # the plugins' implementations are registered with the components
    first = next(network.parameters())
    device = first.device if device is None else device
    dtype = str(first.dtype).removeprefix("torch.")
    return [plan_layer(layer, backend, device, rules, dtype=dtype, where=name, events=network.plan_events)
            for name, layer in zip(network.layer_names(), network.spiking_layers())]
