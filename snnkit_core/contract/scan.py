"""The plain-torch reference scan, a Python loop of ``neuron.step`` over time: the oracle for every faster path."""

from __future__ import annotations

import importlib.util
import os

import torch

from snnkit_core.contract.errors import IncompatibleError


def triton_available(device_type: str) -> bool:
    """True when Triton kernels can run on tensors of ``device_type``: 'cuda' with Triton installed, or 'cpu'
    under Triton's interpreter when both ``TRITON_INTERPRET=1`` (read by Triton at import) and
    ``SNNKIT_TRITON_ON_CPU=1`` are set (tests only: the interpreter is very slow)."""
    if importlib.util.find_spec("triton") is None or device_type not in ("cuda", "cpu"):
        return False
    return device_type == "cuda" or os.environ.get("TRITON_INTERPRET") == os.environ.get("SNNKIT_TRITON_ON_CPU") == "1"


def reference_scan(neuron, current: torch.Tensor, recurrence=None, record: tuple[str, ...] = ()):
    """Run ``neuron`` (a Neuron) over ``current`` (T, B, N) with ``recurrence`` (a Recurrence, or None); returns
    output ``y`` and spikes ``s``, both (T, B, N). (It imports neither: ``Recurrence.scan`` calls it.)

    Step t calls ``neuron.step(I[t], state, R[t])`` with the feedforward current I[t] and, where there is a
    recurrence, its input ``R[t] = recurrence.recurrent_input(past)``, ``past[j-1] = y[t-j]`` (zeros before
    t = 0). With ``record`` (state field names) it returns ``(y, s, {name: (T, B, N)})`` as well."""
    T, B, _ = current.shape
    state = neuron.initial_state(B, current.device, current.dtype)
    missing = [f for f in record if f not in getattr(state, "_fields", ())]
    if missing:
        raise IncompatibleError(f"a rule asked to record state {missing} of neuron {neuron.name!r}, whose state has "
                                f"only {list(getattr(state, '_fields', ()))}")
    ys, ss = [], []
    kept: dict[str, list[torch.Tensor]] = {f: [] for f in record}
    span = recurrence.span if recurrence is not None else 0
    zeros = current.new_zeros(current.shape[1:])
    # unbind once: indexing current[t] per step makes autograd allocate a full (T, B, N) zero gradient per
    # step in backward (O(T^2 B N) work), which would make the oracle needlessly slow
    for t, i_t in enumerate(current.unbind(0)):
        if recurrence is not None:
            past = [ys[t - j] if t - j >= 0 else zeros for j in range(1, span + 1)]
            y, s, state = neuron.step(i_t, state, recurrence.recurrent_input(past))
        else:
            y, s, state = neuron.step(i_t, state)
        ys.append(y)
        ss.append(s)
        if record:
            for f in record:
                kept[f].append(getattr(state, f))
    if record:
        return torch.stack(ys), torch.stack(ss), {f: torch.stack(v) for f, v in kept.items()}
    return torch.stack(ys), torch.stack(ss)
