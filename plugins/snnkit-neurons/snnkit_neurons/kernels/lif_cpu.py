"""The whole ``lif`` scan (optionally with the diagonal self term) as one autograd node, for the CPU.

Same equations as ``kernels/lif_scan.py`` (docs/neurons/lif.md + self term; see ``cpu_scan.c`` for the forward and the
reverse-time backward). The forward and the backward are each one call into the C library of ``cpu.py``;
when it cannot be built the same node runs a torch loop over preallocated tensors instead (in-place ops,
no autograd graph per step). Both equal the reference step loop: identical spikes, gradients to rounding.

Saved for the backward: u (T, B, N) and the output a; s is recomputed as u > V_th.
"""

from __future__ import annotations

import torch

from snnkit_core.contract.surrogate import surrogate_grad

from . import cpu


def inv_tau_s(tau_s: float, dtype: torch.dtype) -> float:
    """1/τs as the reference's ``s / tau_s`` rounds it (for s = 1), in ``dtype``."""
    return float(1 / torch.tensor(tau_s, dtype=dtype))


class LIFScanCPU(torch.autograd.Function):
    """(I (T,B,N), leak (N,), w (N,) or None) -> (a, s); ``use_c``: the C library, else the torch loop."""

    @staticmethod
    def forward(ctx, current, leak, w, tau_s, v_th, kind, width, detach_reset, use_c):
        T, B, N = current.shape
        dt = current.dtype
        cur = current.contiguous()
        lam = leak.detach().to(dt).contiguous()
        wv = w.detach().to(dt).contiguous() if w is not None else None
        a = torch.empty_like(cur)
        u = torch.empty_like(cur)
        s = torch.empty_like(cur)
        decay = 1 - 1 / tau_s
        use_c = use_c and cpu.usable(cur)
        if use_c:
            cpu.fn("lif_fwd", dt)(T, B * N, N, cpu.ptr(cur), cpu.ptr(lam), cpu.ptr(wv), cpu.ptr(a), cpu.ptr(u),
                                  cpu.ptr(s), decay, inv_tau_s(tau_s, dt), v_th, cpu.threads())
        else:
            _torch_fwd(cur, lam, wv, a, u, s, decay, tau_s, v_th)
        ctx.save_for_backward(a, u, lam, wv)
        ctx.cfg = (tau_s, v_th, kind, width, detach_reset, use_c)
        ctx.set_materialize_grads(False)
        return a, s

    @staticmethod
    def backward(ctx, g_a, g_s):
        a, u, lam, wv = ctx.saved_tensors
        tau_s, v_th, kind, width, detach_reset, use_c = ctx.cfg
        T, B, N = a.shape
        g_a = torch.zeros_like(a) if g_a is None else g_a.contiguous()
        g_s = None if g_s is None else g_s.contiguous()
        g_i = torch.empty_like(a)
        g_lam = torch.empty(B, N, dtype=a.dtype)
        g_w = torch.empty(B, N, dtype=a.dtype) if wv is not None else None
        summed = use_c and cpu.usable(a)  # the C backward sums over the batch into row 0, in a fixed order
        if summed:
            cpu.fn("lif_bwd", a.dtype)(T, B * N, N, cpu.ptr(g_a), cpu.ptr(g_s), cpu.ptr(a), cpu.ptr(u), cpu.ptr(lam),
                                       cpu.ptr(wv), cpu.ptr(g_i), cpu.ptr(g_lam), cpu.ptr(g_w), 1 - 1 / tau_s,
                                       inv_tau_s(tau_s, a.dtype), v_th, width, cpu.SURROGATE[kind], int(detach_reset),
                                       cpu.threads())
        else:
            _torch_bwd(g_a, g_s, a, u, lam, wv, g_i, g_lam, g_w, tau_s, v_th, kind, width, detach_reset)
        g_leak = (g_lam[0] if summed else g_lam.sum(0)) if ctx.needs_input_grad[1] else None
        g_wv = (g_w[0] if summed else g_w.sum(0)) if wv is not None and ctx.needs_input_grad[2] else None
        return g_i, g_leak, g_wv, None, None, None, None, None, None


def _torch_fwd(cur, lam, wv, a, u, s, decay, tau_s, v_th):
    """The forward as in-place torch ops per step, rounded exactly like ``lif_step`` (the fallback)."""
    ur = torch.zeros_like(cur[0])
    a_prev = torch.zeros_like(cur[0])
    i = torch.empty_like(cur[0])
    for t in range(cur.shape[0]):
        u_t, s_t, a_t = u[t], s[t], a[t]
        if wv is not None:
            torch.mul(wv, a_prev, out=i)
            i.add_(cur[t])  # I + w·a, as I[t] + recurrent_input
            i_t = i
        else:
            i_t = cur[t]
        torch.mul(lam, ur, out=u_t)
        u_t.add_(i_t)
        torch.gt(u_t, v_th, out=s_t)  # u - V_th > 0  <=>  u > V_th
        torch.mul(u_t, 1 - s_t, out=ur)
        torch.mul(a_prev, decay, out=a_t)
        a_t.add_(s_t / tau_s)
        a_prev = a_t


def _torch_bwd(g_a_ext, g_s_ext, a, u, lam, wv, g_i, g_lam, g_w, tau_s, v_th, kind, width, detach):
    """The reverse-time backward of cpu_scan.c as torch ops (the fallback). Everything that does not depend on
    the carried adjoints is computed for all T at once; per step only the recurrence remains:

        g_a[t] = ∂L/∂a[t]|ext + d·g_a[t+1] + w·g_u[t+1]
        g_u[t] = λ·g_u[t+1]·A[t] + F[t]·g_a[t] + E[t]
        A = (1 - s) - σ'·u  (detached reset: 1 - s),   F = σ'/τs,   E = σ'·∂L/∂s|ext
    """
    decay = 1 - 1 / tau_s
    s = (u > v_th).to(u.dtype)
    sg = surrogate_grad(u - v_th, kind, width)
    A = 1 - s if detach else (1 - s) - sg * u
    F = sg / tau_s
    E = sg * g_s_ext if g_s_ext is not None else None
    g_a = torch.zeros_like(a[0])
    g_ur = torch.zeros_like(a[0])
    for t in range(a.shape[0] - 1, -1, -1):
        g_u = g_i[t]
        g_a.mul_(decay).add_(g_a_ext[t])
        if wv is not None and t < a.shape[0] - 1:
            g_a.addcmul_(wv, g_i[t + 1])
        torch.mul(g_ur, A[t], out=g_u)
        g_u.addcmul_(F[t], g_a)
        if E is not None:
            g_u.add_(E[t])
        torch.mul(lam, g_u, out=g_ur)
    if a.shape[0] > 1:  # ∂L/∂λ = Σ_t g_u[t]·ũ[t-1],  ∂L/∂w = Σ_t g_u[t]·a[t-1]   (per element; summed over b later)
        torch.sum(g_i[1:] * (u[:-1] * (1 - s[:-1])), 0, out=g_lam)
        if g_w is not None:
            torch.sum(g_i[1:] * a[:-1], 0, out=g_w)
    else:
        g_lam.zero_()
        if g_w is not None:
            g_w.zero_()


def lif_scan_cpu(current, leak, w, tau_s, v_th, kind, width, detach_reset, use_c=True):
    """The node with the C library (``use_c``, where it is loaded) or its torch loop."""
    return LIFScanCPU.apply(current, leak, w, tau_s, v_th, kind, width, detach_reset, use_c)
