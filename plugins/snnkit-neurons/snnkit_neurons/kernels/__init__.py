"""Fused GPU kernels (Triton) for neuron scans. The torch reference scan is always the oracle.

Triton is optional: without it, or without CUDA, every scan falls back to the torch path. For tests on a
CPU machine the kernels run under Triton's interpreter when both ``TRITON_INTERPRET=1`` (read by Triton when
it is imported) and ``SNNKIT_TRITON_ON_CPU=1`` are set.
"""

from __future__ import annotations

from snnkit_core.scan import triton_available  # noqa: F401  (the one definition lives in the core)
