"""tssl-bp's layer scan on the CPU: the forward and the reverse-time backward, each ONE call into the C library of
``cpu.py`` over preallocated (T, B, N) tensors.

They are registered as the ``lif`` implementations of kinds ``tssl-bp-forward`` / ``tssl-bp-backward`` (available
when the C library is; :mod:`snnkit_neurons.scans`). The rule (``snnkit_rules.tssl_bp.TSSLScan``) finds them in the
implementation registry, owns the autograd node and keeps its torch loops (``tssl_forward`` / ``tssl_backward``) as
the oracle and the fallback; these functions return None where the C library does not apply (not built,
``SNNKIT_CPU_KERNELS=0``, a non-CPU tensor, mixed or non-float dtypes).

Forward (docs/rules/tssl-bp.md, 'Forward'; the same recursion as ``lif``'s, so it is ``lif_fwd``), per element,
ũ[-1] = a[-1] = 0, d = 1 - 1/τs:

    u[t] = θ·ũ[t-1] + (I[t] + w_s·a[t-1]);   s[t] = u[t] > V_th;   ũ[t] = u[t]·(1 - s[t]);   a[t] = d·a[t-1] + s[t]/τs

Backward: ``tssl_bwd`` in ``cpu_scan_body.h`` (the surrogate, 2021 and 2020 forms of ``tssl_backward``,
ScSr self term folded in), writing G = ∂L/∂I (T, B, N) and the batch sums of ∂L/∂w_s and ∂L/∂θ. Saved
between the two: u, s and a (ũ[t-1] is recomputed from u[t-1] and s[t-1]).
"""

from __future__ import annotations

import torch

from . import cpu
from .lif_cpu import inv_tau_s

FORMS = {"surrogate": 0, "2021": 1, "2020": 2}


def _ready(*tensors) -> bool:
    return cpu.usable(*[t for t in tensors if t is not None])


def forward(current, w_s, leak, tau_s: float, v_th: float):
    """(I (T,B,N), w_s (N,) or None, θ (N,)) -> (u, s, a) each (T, B, N), or None where the C scan does not apply."""
    T, B, N = current.shape
    dt = current.dtype
    lam = leak.detach().contiguous()
    wv = w_s.detach().contiguous() if w_s is not None else None
    if not _ready(current, lam, wv):
        return None
    cur = current.detach().contiguous()
    u, s, a = (torch.empty_like(cur) for _ in range(3))
    cpu.fn("lif_fwd", dt)(T, B * N, N, cpu.ptr(cur), cpu.ptr(lam), cpu.ptr(wv), cpu.ptr(a), cpu.ptr(u), cpu.ptr(s),
                          1 - 1 / tau_s, inv_tau_s(tau_s, dt), v_th, cpu.threads())
    return u, s, a


def backward(g_ext, u, s, a, w_s, leak, tau_s: float, v_th: float, opts: dict):
    """G = ∂L/∂I (T,B,N), ∂L/∂w_s (N,) or None, ∂L/∂θ (N,) and the branch counts (exact at a spike, exact between
    spikes, at the bound) of one layer, or None where the C scan does not apply. ``opts``: the rule's layer
    options (``backward`` resolved to surrogate/2021/2020, ``bound``, ``warmup``, ``width``, ``bound_2020``,
    ``warmup_rate_2020``)."""
    T, B, N = u.shape
    lam = leak.detach().contiguous()
    wv = w_s.detach().contiguous() if w_s is not None else None
    if opts["backward"] not in FORMS or not _ready(g_ext, u, a, lam, wv):
        return None
    dt = u.dtype
    g, u, a = g_ext.contiguous(), u.contiguous(), a.contiguous()  # named: a temporary's buffer would be freed
    G = torch.empty_like(u)
    g_leak = torch.empty(B, N, dtype=dt)
    g_w = torch.empty(B, N, dtype=dt) if wv is not None else None
    form = FORMS[opts["backward"]]
    # the 2020 form's layer-level warm-up, decided exactly as tssl_backward does (on the float spike tensor)
    active = form == 2 and float(s.mean()) > opts["warmup_rate_2020"]
    cnt = torch.zeros(3, dtype=torch.float64)
    cpu.fn("tssl_bwd", dt)(T, B * N, N, cpu.ptr(g), cpu.ptr(u), cpu.ptr(a), cpu.ptr(lam),
                           cpu.ptr(wv), cpu.ptr(G), cpu.ptr(g_leak), cpu.ptr(g_w), 1 / tau_s, 1 - 1 / tau_s, v_th,
                           opts["width"], form, opts["bound"], opts["warmup"] / tau_s, int(active), opts["bound_2020"],
                           cnt.data_ptr(), cpu.threads())
    return G, (g_w[0] if g_w is not None else None), g_leak[0], cnt, active
