"""``lif-soft`` chunk scans over preallocated buffers: one L-step chunk, and SRC's whole chunked layer scan.

Equations (spec §5.1; derivation of the backward in ``cpu_scan.c`` and ``lif_soft._SoftScan``):

    H[t] = λ·U[t-1] + I[t];   S[t] = Θ(H[t] - V_th) (inclusive);   U[t] = H[t] - V_th·S[t]

:func:`chunk_fwd` / :func:`chunk_bwd` run one chunk in place: the C library of ``cpu.py`` where it applies,
else in-place torch ops per step rounded like ``lif_soft_step``.

:class:`SkipScan` is SRC (spec §5.2 eq. 9, ``I[t] += V S[t-k]``) on ``lif-soft`` as ONE autograd node.
Forward, per chunk c of k steps [t0, t1): R = S[t0-k : t1-k] Vᵀ (one (L·B, N) x (N, N) product into a
preallocated buffer), then the neuron over the chunk, writing S and H straight into the (T, B, N) outputs.
Backward, chunks in reverse: the spikes' gradient of chunk c is the outer one plus G = ∂L/∂I[t0+k : t1+k] V
(one product from the later chunk, already computed), then the chunk's reverse scan; finally
∂L/∂V = Σ_{t>=k} ∂L/∂I[t]ᵀ S[t-k] as one (N, T·B) x (T·B, N) product. Nothing is concatenated; saved: H and S.
"""

from __future__ import annotations

import torch

from snnkit_core.surrogate import surrogate_grad

from . import cpu


def chunk_fwd(I, R, u, s_out, h_out, decay: float, v_th: float) -> None:
    """L steps from membrane ``u`` (B, N), updated in place; writes S and H (L, B, N). ``R``: optional second
    input added to I first (as the reference adds the recurrent input to the current)."""
    L, B, N = I.shape
    if cpu.usable(I, u):
        cpu.fn("soft_fwd", I.dtype)(L, B * N, cpu.ptr(I), cpu.ptr(R), cpu.ptr(u), cpu.ptr(s_out), cpu.ptr(h_out),
                                    decay, v_th, cpu.threads())
        return
    for t in range(L):
        h = h_out[t]
        i_t = I[t] if R is None else I[t] + R[t]
        torch.mul(u, decay, out=h)
        h.add_(i_t)
        torch.ge(h, v_th, out=s_out[t])
        torch.mul(s_out[t], v_th, out=u)
        torch.sub(h, u, out=u)


def chunk_bwd(gs, G, h, gu, gi, decay: float, v_th: float, kind: str, width: float, detach: bool) -> None:
    """Reverse scan of one chunk: ``gu`` (B, N) is ∂L/∂U[t1-1] on entry and ∂L/∂U[t0-1] on exit; writes
    ∂L/∂I into ``gi``. ``gs``/``G``: gradients arriving at S (either may be None)."""
    L, B, N = h.shape
    if cpu.usable(h, gu):
        cpu.fn("soft_bwd", h.dtype)(L, B * N, cpu.ptr(gs), cpu.ptr(G), cpu.ptr(h), cpu.ptr(gu), cpu.ptr(gi),
                                    decay, v_th, width, cpu.SURROGATE[kind], int(detach), cpu.threads())
        return
    sg = surrogate_grad(h - v_th, kind, width)
    for t in range(L - 1, -1, -1):
        g_s = torch.zeros_like(gu) if gs is None else gs[t]
        if G is not None:
            g_s = g_s + G[t]
        if detach:
            torch.addcmul(gu, sg[t], g_s, out=gi[t])
        else:
            torch.addcmul(gu, sg[t], g_s - v_th * gu, out=gi[t])
        torch.mul(gi[t], decay, out=gu)


class SoftChunk(torch.autograd.Function):
    """(I (L,B,N), U[-1] (B,N)) -> (S (L,B,N), U[L-1] (B,N)): one chunk as one node."""

    @staticmethod
    def forward(ctx, current, u0, decay, v_th, kind, width, detach_reset):
        cur = current.contiguous()
        s = torch.empty_like(cur)
        h = torch.empty_like(cur)
        u = u0.detach().to(cur.dtype).contiguous().clone()
        chunk_fwd(cur, None, u, s, h, decay, v_th)
        ctx.save_for_backward(h)
        ctx.consts = (decay, v_th, kind, width, detach_reset)
        ctx.set_materialize_grads(False)
        return s, u

    @staticmethod
    def backward(ctx, g_s, g_u):
        (h,) = ctx.saved_tensors
        decay, v_th, kind, width, detach_reset = ctx.consts
        gu = torch.zeros_like(h[0]) if g_u is None else g_u.contiguous().clone()
        gi = torch.empty_like(h)
        chunk_bwd(None if g_s is None else g_s.contiguous(), None, h, gu, gi, decay, v_th, kind, width, detach_reset)
        return gi, gu, None, None, None, None, None


class SkipScan(torch.autograd.Function):
    """SRC on lif-soft: (I (T,B,N), V (N,N)) -> S (T,B,N), with I[t] += V S[t-k] (zero for t < k)."""

    @staticmethod
    def forward(ctx, current, weight, k, decay, v_th, kind, width, detach_reset):
        T, B, N = current.shape
        cur = current.contiguous()
        wt = weight.detach().t()
        s = torch.empty_like(cur)
        h = torch.empty_like(cur)
        u = torch.zeros_like(cur[0])
        rec = torch.empty(min(k, T) * B, N, dtype=cur.dtype)  # the recurrent input of one chunk, (L·B, N)
        s_rows = s.view(T * B, N)
        if cpu.usable(cur, u):  # the loop below is per chunk: bind the C call and raw pointers once
            f, nt, step = cpu.fn("soft_fwd", cur.dtype), cpu.threads(), B * N * cur.element_size()
            pc, ps, ph, pu, pr = (x.data_ptr() for x in (cur, s, h, u, rec))
            for t0 in range(0, T, k):
                L = min(t0 + k, T) - t0
                if t0 > 0:
                    torch.mm(s_rows[(t0 - k) * B:(t0 - k + L) * B], wt, out=rec[:L * B])
                f(L, B * N, pc + t0 * step, pr if t0 > 0 else None, pu, ps + t0 * step, ph + t0 * step, decay, v_th, nt)
        else:
            for t0 in range(0, T, k):
                t1 = min(t0 + k, T)
                L = t1 - t0
                R = None
                if t0 > 0:
                    torch.mm(s_rows[(t0 - k) * B:(t1 - k) * B], wt, out=rec[:L * B])
                    R = rec[:L * B].view(L, B, N)
                chunk_fwd(cur[t0:t1], R, u, s[t0:t1], h[t0:t1], decay, v_th)
        ctx.save_for_backward(h, s, weight)
        ctx.consts = (k, decay, v_th, kind, width, detach_reset)
        ctx.set_materialize_grads(False)
        return s

    @staticmethod
    def backward(ctx, g_s):
        h, s, weight = ctx.saved_tensors
        k, decay, v_th, kind, width, detach_reset = ctx.consts
        T, B, N = h.shape
        w = weight.detach()
        gs = None if g_s is None else g_s.contiguous()
        gi = torch.empty_like(h)
        gu = torch.zeros_like(h[0])
        G = torch.empty(min(k, T) * B, N, dtype=h.dtype)  # ∂L/∂S from the next chunk's recurrent input, (L·B, N)
        gi_rows = gi.view(T * B, N)
        starts = list(range(0, T, k))
        use_c = cpu.usable(h, gu)
        if use_c:  # bind the C call and raw pointers once (see forward)
            f, nt, step = cpu.fn("soft_bwd", h.dtype), cpu.threads(), B * N * h.element_size()
            pgs = gs.data_ptr() if gs is not None else None
            ph, pgu, pgi, pG = (x.data_ptr() for x in (h, gu, gi, G))
            code = cpu.SURROGATE[kind]
        for t0 in reversed(starts):
            t1 = min(t0 + k, T)
            L = t1 - t0
            n = min(t1 + k, T) - (t0 + k)  # steps of this chunk that feed a later step
            if n > 0:
                torch.mm(gi_rows[(t0 + k) * B:(t0 + k + n) * B], w, out=G[:n * B])
                if n < L:
                    G[n * B:L * B].zero_()
            if use_c:
                f(L, B * N, None if pgs is None else pgs + t0 * step, pG if n > 0 else None, ph + t0 * step, pgu,
                  pgi + t0 * step, decay, v_th, width, code, int(detach_reset), nt)
            else:
                chunk_bwd(None if gs is None else gs[t0:t1], G[:L * B].view(L, B, N) if n > 0 else None, h[t0:t1], gu,
                          gi[t0:t1], decay, v_th, kind, width, detach_reset)
        g_w = None
        if ctx.needs_input_grad[1]:
            g_w = gi[k:].reshape(-1, N).t() @ s[: T - k].reshape(-1, N) if T > k else torch.zeros_like(w)
        return gi, g_w, None, None, None, None, None, None
