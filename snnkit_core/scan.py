"""The plain-torch reference scan: a Python loop of ``neuron.step`` over time.

It is the oracle for every faster path (chunked recurrence, custom rule backwards, fused kernels).
"""

from __future__ import annotations

import torch

from .interfaces import Neuron, Recurrence


_kernel_calls = 0


def triton_available(device_type: str) -> bool:
    """True when Triton kernels can run on tensors of ``device_type``: 'cuda' with Triton installed, or 'cpu'
    under Triton's interpreter when both ``TRITON_INTERPRET=1`` (read by Triton at import) and
    ``SNNKIT_TRITON_ON_CPU=1`` are set (tests only: the interpreter is very slow)."""
    import importlib.util
    import os

    if importlib.util.find_spec("triton") is None:
        return False
    if device_type == "cuda":
        return True
    return device_type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1" and os.environ.get("SNNKIT_TRITON_ON_CPU") == "1"


def note_kernel_call() -> None:
    """Called by a plugin's fused kernel each time it runs, so ``--backend triton`` can tell whether a layer's
    scan really used one (a kernel may live in ``fused_scan`` or deeper, e.g. a neuron's ``scan_chunk``)."""
    global _kernel_calls
    _kernel_calls += 1


def kernel_calls() -> int:
    return _kernel_calls


def reference_scan(neuron: Neuron, current: torch.Tensor, recurrence: Recurrence | None = None):
    """Run ``neuron`` over ``current`` (T, B, N); returns output ``y`` and spikes ``s``, both (T, B, N)."""
    T, B, _ = current.shape
    state = neuron.initial_state(B, current.device, current.dtype)
    ys, ss = [], []
    span = recurrence.span if recurrence is not None else 0
    zeros = current.new_zeros(current.shape[1:])
    # unbind once: indexing current[t] per step makes autograd allocate a full (T, B, N) zero gradient per
    # step in backward (O(T^2 B N) work), which would make the oracle needlessly slow
    for t, i_t in enumerate(current.unbind(0)):
        if recurrence is not None:
            # past[j-1] = y[t-j]; zeros before the sequence starts
            past = [ys[t - j] if t - j >= 0 else zeros for j in range(1, span + 1)]
            i_t = i_t + recurrence.recurrent_input(past)
        y, s, state = neuron.step(i_t, state)
        ys.append(y)
        ss.append(s)
    return torch.stack(ys), torch.stack(ss)
