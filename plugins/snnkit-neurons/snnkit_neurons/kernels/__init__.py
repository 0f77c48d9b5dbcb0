"""Fused GPU kernels (Triton) for neuron scans. The torch reference scan is always the oracle.

Triton is optional: without it, or without CUDA, every scan falls back to the torch path. For tests on a
CPU machine the kernels run under Triton's interpreter when both ``TRITON_INTERPRET=1`` (read by Triton when
it is imported) and ``SNNKIT_TRITON_ON_CPU=1`` are set.
"""

from __future__ import annotations

import os


def triton_available(device_type: str) -> bool:
    """True when Triton kernels can run on tensors of ``device_type`` ('cuda', or 'cpu' under the interpreter)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if device_type == "cuda":
        return True
    return os.environ.get("TRITON_INTERPRET") == "1" and os.environ.get("SNNKIT_TRITON_ON_CPU") == "1"
