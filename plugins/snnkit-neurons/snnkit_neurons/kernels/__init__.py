"""Fused kernels for neuron scans: Triton on the GPU (lif_scan.py, lif_soft_scan.py) and plain C on the CPU
(cpu_scan.c via cpu.py, used by lif_cpu.py and soft_cpu.py). The torch reference scan is always the oracle.
They are registered as implementations in :mod:`snnkit_neurons.scans`; the network chooses among them once.

Triton is optional: without it, or without CUDA, the torch paths run. For tests on a CPU machine the kernels
run under Triton's interpreter when both ``TRITON_INTERPRET=1`` (read by Triton when it is imported) and
``SNNKIT_TRITON_ON_CPU=1`` are set.
"""

from __future__ import annotations

import importlib
import importlib.util

from snnkit_core.contract.scan import triton_available


def triton_reason(device_type: str) -> str | None:
    """None when Triton kernels can run on ``device_type`` in this process, else why not."""
    if triton_available(device_type):
        return None
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed"
    if device_type == "cpu":
        return "Triton runs on CUDA (on the CPU only under its interpreter, for tests)"
    return f"Triton kernels cannot run on {device_type}"


def surrogate_reason(surrogate: str, module: str, kernel: str) -> str | None:
    """None when ``kernel`` (in ``kernels.<module>``, imported only here: it imports Triton) has ``surrogate``."""
    if surrogate not in importlib.import_module(f"{__name__}.{module}").SUPPORTED_SURROGATES:
        return f"the {kernel} kernel has no {surrogate!r} surrogate"
    return None
