"""Scan paths: which implementation runs each spiking layer's scan, chosen once when the network is planned.

A layer's scan maps its input current (T, B, N) to ``(y, s)`` (or ``(y, s, extra)`` with recorded state). The
plan is made when the network is assembled and again only when its backend, rules or device change
(``Network.plan``), never per call. For each layer, in order:

1. the default path, from ``--backend``:

   * ``reference``: the plain step loop of :func:`snnkit_core.contract.scan.reference_scan` (the oracle);
   * ``fused``: the neuron's ``fused_scan`` (``auto``/``triton``, when ``kernel_reason`` and
     ``fused_scan_reason`` are None);
   * ``fast``: the neuron's ``fast_scan`` (``auto``/``torch``, e.g. the CPU scans of ``lif``/``lif-soft``, when
     ``fast_scan_reason`` is None);
   * ``connectivity``: the recurrence's own exact ``scan`` (e.g. SRC's k steps per product), with
     ``+kernel`` when that scan runs the neuron's chunk kernel;
   * ``reference`` again where none of these applies;

   a rule that records neuron state (``record_state``) needs the reference path;
2. then each rule's ``layer_scan(layer, default)`` in order (the gradient rule, then add-ons), each getting
   the scan chosen so far, which it may wrap or replace; the path name gains ``rule:NAME``.

``--backend triton`` on a layer whose path runs no kernel, and ``--backend triton|reference`` under a rule
that owns the scan (``owns_scan``), are refused here with a message that says so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from attrs import frozen

from snnkit_core.contract.errors import ConfigError, IncompatibleError
from snnkit_core.contract.interfaces import Recurrence

BACKENDS = ("auto", "triton", "torch", "reference")


@frozen
class LayerPlan:
    """The chosen scan of one layer: ``path`` names it (recorded in the manifest, printed by ``snnkit bench``)."""

    path: str
    scan: Callable


def _reference_scan(layer, current, record: tuple[str, ...] = ()):
    from snnkit_core.contract.scan import reference_scan

    return reference_scan(layer.neuron, current, layer.recurrence, record)


def _reference(record: tuple[str, ...]) -> Callable:
    """The reference scan recording ``record`` (a partial of a module function, so a plan can be pickled)."""
    return functools.partial(_reference_scan, record=record)


def _fused(layer, current):
    res = layer.neuron.fused_scan(current, layer.recurrence)
    if res is not None:
        return res
    if layer.neuron.kernel_mode == "required":  # e.g. float64 input: the kernels are float32 only
        raise IncompatibleError(
            f"--backend triton: neuron {layer.neuron.name!r} has no fused kernel for this input (dtype "
            f"{current.dtype}, device {current.device.type}). Use --backend torch."
        )
    return layer.scan(current)


def _fast(layer, current):
    res = layer.neuron.fast_scan(current, layer.recurrence)
    return res if res is not None else layer.scan(current)  # e.g. a dtype the fast scan does not take


def _connectivity(layer, current):
    return layer.recurrence.scan(layer.neuron, current)


def has_own_scan(recurrence: Recurrence | None) -> bool:
    """The recurrence overrides ``Recurrence.scan`` with a faster exact scan."""
    return recurrence is not None and type(recurrence).scan is not Recurrence.scan


def default_plan(layer, backend: str, device: torch.device, record: tuple[str, ...] = ()) -> LayerPlan:
    """The path ``backend`` gives ``layer`` on ``device`` before any rule acts; sets ``neuron.kernel_mode`` once."""
    n, rec = layer.neuron, layer.recurrence
    kernel_why = n.kernel_reason(device) if backend in ("auto", "triton") else f"--backend {backend}"
    n.kernel_mode = "off" if kernel_why is not None else ("required" if backend == "triton" else "auto")
    if backend == "reference" or record:
        n.kernel_mode = "off"
        plan = LayerPlan("reference", _reference(record))
    elif kernel_why is None and n.fused_scan_reason(rec) is None:
        plan = LayerPlan("fused", _fused)
    elif backend in ("auto", "torch") and n.fast_scan_reason(rec, device) is None:
        plan = LayerPlan("fast", _fast)
    elif has_own_scan(rec):
        chunk_kernel = kernel_why is None and rec.uses_scan_chunk and n.has_chunk_kernel
        plan = LayerPlan("connectivity+kernel" if chunk_kernel else "connectivity", _connectivity)
    else:
        plan = LayerPlan("reference", _reference(()))
    if backend == "triton" and "kernel" not in plan.path and plan.path != "fused":
        why = kernel_why or n.fused_scan_reason(rec) or "its recurrence's scan runs no kernel"
        raise IncompatibleError(
            f"--backend triton: neuron {n.name!r} has no fused kernel for this layer (recurrence "
            f"{getattr(rec, 'structure', 'none')}, device {device.type}{', recording state' if record else ''}): "
            f"{why}. Triton runs on CUDA (or on CPU under its interpreter: TRITON_INTERPRET=1 and "
            f"SNNKIT_TRITON_ON_CPU=1). Use --backend torch."
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


def plan_layer(layer, backend: str, device: torch.device, rules: Sequence = ()) -> LayerPlan:
    """The default path, then each rule's ``layer_scan`` in order (see the module docstring)."""
    check_backend(backend, rules)
    record = tuple(dict.fromkeys(f for r in rules for f in r.record_state))
    plan = default_plan(layer, backend, device, record)
    for rule in rules:
        scan = rule.layer_scan(layer, plan.scan)
        if scan is None:
            continue
        path = f"rule:{rule.name}" if rule.owns_scan else f"{plan.path}>rule:{rule.name}"
        plan = LayerPlan(path, scan)
    return plan


def plan_network(network, backend: str, rules: Sequence = (), device: torch.device | None = None) -> list[LayerPlan]:
    """One :class:`LayerPlan` per spiking layer of ``network`` (hidden layers, then a spiking output layer)."""
    check_backend(backend, rules)
    if device is None:
        device = next(network.parameters()).device
    return [plan_layer(layer, backend, device, rules) for layer in network.spiking_layers()]
