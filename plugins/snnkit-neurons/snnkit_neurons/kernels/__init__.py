"""Fused kernels for neuron scans: Triton on the GPU (lif_scan.py, lif_soft_scan.py) and plain C on the CPU
(cpu_scan.c via cpu.py, used by lif_cpu.py and soft_cpu.py). The torch reference scan is always the oracle.

Triton is optional: without it, or without CUDA, every scan falls back to the torch path. For tests on a
CPU machine the kernels run under Triton's interpreter when both ``TRITON_INTERPRET=1`` (read by Triton when
it is imported) and ``SNNKIT_TRITON_ON_CPU=1`` are set.
"""

from __future__ import annotations

import warnings

from snnkit_core.contract.scan import triton_available  # (the one definition lives in the core)

#: why the kernels were switched off in this process (a compile or launch failure), or None
failure: str | None = None


def usable(device_type: str) -> bool:
    """Triton can run here and no kernel has failed in this process."""
    return failure is None and triton_available(device_type)


def unusable_reason(device_type: str, surrogate: str, module: str, kernel: str) -> str | None:
    """None when ``kernel`` (in ``kernels.<module>``, imported only when Triton is usable) can run on
    ``device_type`` with ``surrogate``, else why not."""
    if not usable(device_type):
        return f"Triton kernels cannot run on {device_type}" + (f" ({failure})" if failure else "")
    import importlib

    if surrogate not in importlib.import_module(f"{__name__}.{module}").SUPPORTED_SURROGATES:
        return f"the {kernel} kernel has no {surrogate!r} surrogate"
    return None


def disable(exc: BaseException) -> None:
    """A kernel failed to compile or launch (e.g. a GPU Triton does not support): warn once and use the torch
    scans for the rest of the process. Under ``--backend triton`` the network then refuses the layer."""
    global failure
    failure = f"{type(exc).__name__}: {exc}"
    warnings.warn(f"snnkit's Triton kernels failed ({failure}); using the torch scans from now on", RuntimeWarning,
                  stacklevel=3)
