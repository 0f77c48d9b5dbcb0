"""``lif-soft`` chunk scans over preallocated buffers: one L-step chunk, and SRC's whole chunked layer scan.

Equations (docs/methods/asrc.md, "Neuron lif-soft"; derivation of the backward in ``cpu_scan.c`` and
``lif_soft.SoftScan``):

    H[t] = λ·U[t-1] + I[t];   S[t] = Θ(H[t] - V_th) (inclusive);   U[t] = H[t] - V_th·S[t]

:func:`chunk_fwd` / :func:`chunk_bwd` run one chunk in place: the C library of ``cpu.py`` where it applies,
else in-place torch ops per step rounded like ``lif_soft_step``.

:class:`SkipScan` is SRC (the paper's eq. 9, ``I[t] += V S[t-k]``) on ``lif-soft`` as ONE autograd node.
Forward, per chunk c of k steps [t0, t1): R = S[t0-k : t1-k] Vᵀ (one (L·B, N) x (N, N) product into a
preallocated buffer), then the neuron over the chunk, writing S and H straight into the (T, B, N) outputs.
Backward, chunks in reverse: the spikes' gradient of chunk c is the outer one plus G = ∂L/∂I[t0+k : t1+k] V
(one product from the later chunk, already computed), then the chunk's reverse scan; finally
∂L/∂V = Σ_{t>=k} ∂L/∂I[t]ᵀ S[t-k] as one (N, T·B) x (T·B, N) product. Nothing is concatenated; saved: H and S.
"""

from __future__ import annotations

import torch

from snnkit_core.contract.surrogate import surrogate_grad

from . import cpu


def chunk_fwd(I, R, u, s_out, h_out, decay: float, v_th: float, use_c: bool = True) -> None:  # noqa: E741 - I[t], the paper's input current
    """L steps from membrane ``u`` (B, N), updated in place; writes S and H (L, B, N). ``R``: optional second
    input added to I first (as the reference adds the recurrent input to the current). ``use_c``: the C library
    where it is loaded, else (and when False) the torch ops."""
    L, B, N = I.shape
    if use_c and cpu.usable(I, u):
        cpu.fn("soft_fwd", I.dtype)(L, B * N, cpu.ptr(I), cpu.ptr(R), cpu.ptr(u), cpu.ptr(s_out), cpu.ptr(h_out),
                                    decay, v_th, cpu.threads(L * B * N))
        return
    for t in range(L):
        h = h_out[t]
        i_t = I[t] if R is None else I[t] + R[t]
        torch.mul(u, decay, out=h)
        h.add_(i_t)
        torch.ge(h, v_th, out=s_out[t])
        torch.mul(s_out[t], v_th, out=u)
        torch.sub(h, u, out=u)


def chunk_bwd(gs, G, h, gu, gi, decay: float, v_th: float, kind: str, width: float, detach: bool,
              use_c: bool = True) -> None:
    """Reverse scan of one chunk: ``gu`` (B, N) is ∂L/∂U[t1-1] on entry and ∂L/∂U[t0-1] on exit; writes
    ∂L/∂I into ``gi``. ``gs``/``G``: gradients arriving at S (either may be None)."""
    L, B, N = h.shape
    if use_c and cpu.usable(h, gu):
        cpu.fn("soft_bwd", h.dtype)(L, B * N, cpu.ptr(gs), cpu.ptr(G), cpu.ptr(h), cpu.ptr(gu), cpu.ptr(gi),
                                    decay, v_th, width, cpu.SURROGATE[kind], int(detach), cpu.threads(L * B * N))
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
    """(I (L,B,N), U[-1] (B,N)) -> (S (L,B,N), U[L-1] (B,N)): one chunk as one node (``use_c``: see chunk_fwd)."""

    @staticmethod
    def forward(ctx, current, u0, decay, v_th, kind, width, detach_reset, use_c):
        cur = current.contiguous()
        s = torch.empty_like(cur)
        h = torch.empty_like(cur)
        u = u0.detach().to(cur.dtype).contiguous().clone()
        chunk_fwd(cur, None, u, s, h, decay, v_th, use_c)
        ctx.save_for_backward(h)
        ctx.consts = (decay, v_th, kind, width, detach_reset, use_c)
        ctx.set_materialize_grads(False)
        return s, u

    @staticmethod
    def backward(ctx, g_s, g_u):
        (h,) = ctx.saved_tensors
        decay, v_th, kind, width, detach_reset, use_c = ctx.consts
        gu = torch.zeros_like(h[0]) if g_u is None else g_u.contiguous().clone()
        gi = torch.empty_like(h)
        chunk_bwd(None if g_s is None else g_s.contiguous(), None, h, gu, gi, decay, v_th, kind, width, detach_reset,
                  use_c)
        return gi, gu, None, None, None, None, None, None


class SkipScan(torch.autograd.Function):
    """SRC on lif-soft: (I (T,B,N), V (N,N)) -> S (T,B,N), with I[t] += V S[t-k] (zero for t < k)."""

    @staticmethod
    def forward(ctx, current, weight, k, decay, v_th, kind, width, detach_reset, use_c):
        T, B, N = current.shape
        cur = current.contiguous()
        wt = weight.detach().t()
        s = torch.empty_like(cur)
        h = torch.empty_like(cur)
        u = torch.zeros_like(cur[0])
        rec = torch.empty(min(k, T) * B, N, dtype=cur.dtype)  # the recurrent input of one chunk, (L·B, N)
        s_rows = s.view(T * B, N)
        if use_c and cpu.usable(cur, u):  # the loop below is per chunk: bind the C call and raw pointers once
            f, nt, step = cpu.fn("soft_fwd", cur.dtype), cpu.threads(min(k, T) * B * N), B * N * cur.element_size()
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
                chunk_fwd(cur[t0:t1], R, u, s[t0:t1], h[t0:t1], decay, v_th, False)
        ctx.save_for_backward(h, s, weight)
        ctx.consts = (k, decay, v_th, kind, width, detach_reset, use_c)
        ctx.set_materialize_grads(False)
        return s

    @staticmethod
    def backward(ctx, g_s):
        h, s, weight = ctx.saved_tensors
        k, decay, v_th, kind, width, detach_reset, use_c = ctx.consts
        T, B, N = h.shape
        w = weight.detach()
        gs = None if g_s is None else g_s.contiguous()
        gi = torch.empty_like(h)
        gu = torch.zeros_like(h[0])
        G = torch.empty(min(k, T) * B, N, dtype=h.dtype)  # ∂L/∂S from the next chunk's recurrent input, (L·B, N)
        gi_rows = gi.view(T * B, N)
        starts = list(range(0, T, k))
        use_c = use_c and cpu.usable(h, gu)
        if use_c:  # bind the C call and raw pointers once (see forward)
            f, nt, step = cpu.fn("soft_bwd", h.dtype), cpu.threads(min(k, T) * B * N), B * N * h.element_size()
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
                          gi[t0:t1], decay, v_th, kind, width, detach_reset, False)
        g_w = None
        if ctx.needs_input_grad[1]:
            g_w = gi[k:].reshape(-1, N).t() @ s[: T - k].reshape(-1, N) if T > k else torch.zeros_like(w)
        return gi, g_w, None, None, None, None, None, None, None


def _window(alpha_pad: torch.Tensor, rows: int, cols: int, offset: int, di: int, K: int) -> torch.Tensor:
    """(rows, cols) Toeplitz slice of the span kernel: A[i, r] = α[offset + di·(i - r)], zero where that index is
    >= K (``alpha_pad[K]`` is 0); callers choose offsets that keep it >= 0."""
    i = torch.arange(rows).unsqueeze(1)
    r = torch.arange(cols).unsqueeze(0)
    return alpha_pad[(offset + di * (i - r)).clamp(max=K)]


def _mixed_fwd_c(cur, w, al, L: int, s, h, m, decay: float, v_th: float, gemm: int) -> None:
    """MixedScan's forward as ONE C call (``mixed_fwd``, products through torch's BLAS on one thread)."""
    T, B, N = cur.shape
    K, dt = al.shape[0], cur.dtype
    A, rec, u = torch.empty(L * K, dtype=dt), torch.empty(B, N, dtype=dt), torch.empty(B, N, dtype=dt)
    with cpu.one_blas_thread():
        cpu.fn("mixed_fwd", dt)(T, B, N, K, L, cur.data_ptr(), w.data_ptr(), al.data_ptr(), A.data_ptr(),
                                rec.data_ptr(), s.data_ptr(), h.data_ptr(), m.data_ptr(), u.data_ptr(), decay, v_th,
                                gemm)


class MixedScan(torch.autograd.Function):
    """ASRC in training on lif-soft (the paper's eq. 12-13) as ONE autograd node:
    (I (T,B,N), V (N,N), α (K,)) -> S (T,B,N), with

        m[t] = Σ_{j=1..K} α_j S[t-j]   (S[<0] = 0),   H[t] = λ·U[t-1] + (I[t] + V m[t]),   S, U as lif-soft.

    Forward, chunks [t0, t0+L) of L = min(chunk, K) steps: the part of m over the steps before t0 is ONE Toeplitz
    product (L, M) x (M, B·N) written into the preallocated m; per step the ≤ L-1 in-chunk terms are one C call
    (``mix_add``), then R = m[t] Vᵀ (one (B, N) x (N, N) product into a preallocated buffer) and the neuron step
    (one C call). Backward, reverse time: ∂L/∂S[t] from the recurrence is Σ_j α_j ∂L/∂m[t+j], with
    ∂L/∂m = ∂L/∂I·V, again one Toeplitz product per chunk (the later chunks' part) plus ≤ L-1 in-chunk terms per
    step; per step one C call for the neuron's reverse step and one product for ∂L/∂m[t]. Then
    ∂L/∂V = Σ_t ∂L/∂I[t]ᵀ m[t] (one product) and ∂L/∂α_j = Σ_t ⟨∂L/∂m[t], S[t-j]⟩ (band products, 16 rows at a
    time). Saved: H, S and m. Without the C library the same node runs chunk_fwd / chunk_bwd and torch mixes.
    """

    @staticmethod
    def forward(ctx, current, weight, alpha, chunk, decay, v_th, kind, width, detach_reset, use_c):
        T, B, N = current.shape
        BN, K = B * N, alpha.shape[0]
        L = max(1, min(chunk, K))
        cur = current.contiguous()
        dt = cur.dtype
        wt = weight.detach().t()
        al = alpha.detach().to(dt).contiguous()
        apad = torch.cat([al, al.new_zeros(1)])
        s, h, m = torch.empty_like(cur), torch.empty_like(cur), torch.empty_like(cur)
        gemm = cpu.gemm(dt) if use_c else None
        if gemm is not None and cpu.usable(cur, al) and weight.dtype == dt:  # the whole layer in one C call
            _mixed_fwd_c(cur, weight.detach().contiguous(), al, L, s, h, m, decay, v_th, gemm)
            ctx.save_for_backward(h, s, m, weight, al)
            ctx.consts = (L, decay, v_th, kind, width, detach_reset, True)
            ctx.set_materialize_grads(False)
            return s
        m[:L].zero_()  # later rows are written whole by each chunk's window product before the in-chunk terms
        u = torch.zeros_like(cur[0])
        rec = torch.empty(B, N, dtype=dt)
        s_flat, m_flat = s.view(T, BN), m.view(T, BN)
        m_t = m.unbind(0)  # per-step views made once (indexing per step costs more than the small product)
        windows: dict = {}
        use_c = use_c and cpu.usable(cur, u, al)
        if use_c:
            f, mix, nt, step = cpu.fn("soft_fwd", dt), cpu.fn("mix_add", dt), cpu.threads(BN), BN * cur.element_size()
            pc, ps, ph, pu, pr, pm, pa = (x.data_ptr() for x in (cur, s, h, u, rec, m, al))
        for t0 in range(0, T, L):
            t1 = min(t0 + L, T)
            M = min(K, t0)
            if M > 0:  # the window's part before the chunk: A[i, r] = α_{t0+i - (t0-M+r)}, index M-1+i-r
                key = (t1 - t0, M)
                if key not in windows:
                    windows[key] = _window(apad, t1 - t0, M, M - 1, 1, K)
                torch.mm(windows[key], s_flat[t0 - M:t0], out=m_flat[t0:t1])
            for t in range(t0, t1):
                n = min(t - t0, K)  # in-chunk terms j = 1..n
                if use_c:
                    if n > 0:
                        mix(BN, pm + t * step, ps + (t - 1) * step, -BN, pa, n, nt)
                    if t > 0:
                        torch.mm(m_t[t], wt, out=rec)
                    f(1, BN, pc + t * step, pr if t > 0 else None, pu, ps + t * step, ph + t * step, decay, v_th, nt)
                else:
                    for j in range(1, n + 1):
                        m[t].add_(s[t - j] * al[j - 1])
                    R = None
                    if t > 0:
                        torch.mm(m[t], wt, out=rec)
                        R = rec.unsqueeze(0)
                    chunk_fwd(cur[t:t + 1], R, u, s[t:t + 1], h[t:t + 1], decay, v_th, False)
        ctx.save_for_backward(h, s, m, weight, al)
        ctx.consts = (L, decay, v_th, kind, width, detach_reset, use_c)
        ctx.set_materialize_grads(False)
        return s

    @staticmethod
    def backward(ctx, g_s):
        h, s, m, weight, al = ctx.saved_tensors
        L, decay, v_th, kind, width, detach_reset, use_c = ctx.consts
        T, B, N = h.shape
        BN, K = B * N, al.shape[0]
        dt = h.dtype
        w = weight.detach()
        apad = torch.cat([al, al.new_zeros(1)])
        gs = None if g_s is None else g_s.contiguous()
        gi = torch.empty_like(h)
        gm = torch.empty_like(h)  # ∂L/∂m[t] = ∂L/∂I[t] V, written at step t before any earlier step reads it
        gm[0].zero_()  # (never read: m[0] = 0 has no inputs)
        G = torch.empty(L, B, N, dtype=dt)  # ∂L/∂S of the chunk's steps through the later steps' windows
        gu = torch.zeros_like(h[0])
        gemm = cpu.gemm(dt) if use_c else None
        if gemm is not None and cpu.usable(h, al):  # the whole reverse scan in one C call
            A = torch.empty(L * K, dtype=dt)
            wc = w.contiguous()
            with cpu.one_blas_thread():
                cpu.fn("mixed_bwd", dt)(T, B, N, K, L, None if gs is None else gs.data_ptr(), h.data_ptr(),
                                        wc.data_ptr(), al.data_ptr(), A.data_ptr(), G.data_ptr(), gi.data_ptr(),
                                        gm.data_ptr(), gu.data_ptr(), decay, v_th, width, cpu.SURROGATE[kind],
                                        int(detach_reset), gemm)
            return (gi,) + MixedScan._param_grads(ctx, gi, gm, s, m, al)
        gm_flat, G_flat = gm.view(T, BN), G.view(L, BN)
        gi_t, gm_t = gi.unbind(0), gm.unbind(0)
        windows: dict = {}
        use_c = use_c and cpu.usable(h, gu, al)
        if use_c:
            f, mix, nt, step = cpu.fn("soft_bwd", dt), cpu.fn("mix_add", dt), cpu.threads(BN), BN * h.element_size()
            pgs = gs.data_ptr() if gs is not None else None
            ph, pgu, pgi, pgm, pG, pa = (x.data_ptr() for x in (h, gu, gi, gm, G, al))
            code = cpu.SURROGATE[kind]
        for t0 in reversed(range(0, T, L)):
            t1 = min(t0 + L, T)
            n = t1 - t0
            Mp = min(K, T - t1)
            if Mp > 0:  # from the steps after the chunk: A[i, r] = α_{t1+r - (t0+i)}, index t1-t0-1+r-i
                key = (n, Mp)
                if key not in windows:
                    windows[key] = _window(apad, n, Mp, t1 - t0 - 1, -1, K)
                torch.mm(windows[key], gm_flat[t1:t1 + Mp], out=G_flat[:n])
            else:
                G[:n].zero_()
            for t in range(t1 - 1, t0 - 1, -1):
                i = t - t0
                nin = min(t1 - 1 - t, K)  # in-chunk later steps t+j, j = 1..nin
                if use_c:
                    if nin > 0:
                        mix(BN, pG + i * step, pgm + (t + 1) * step, BN, pa, nin, nt)
                    f(1, BN, None if pgs is None else pgs + t * step, pG + i * step, ph + t * step, pgu, pgi + t * step,
                      decay, v_th, width, code, int(detach_reset), nt)
                else:
                    for j in range(1, nin + 1):
                        G[i].add_(gm[t + j] * al[j - 1])
                    chunk_bwd(None if gs is None else gs[t:t + 1], G[i:i + 1], h[t:t + 1], gu, gi[t:t + 1], decay, v_th,
                              kind, width, detach_reset, False)
                if t > 0:
                    torch.mm(gi_t[t], w, out=gm_t[t])
        return (gi,) + MixedScan._param_grads(ctx, gi, gm, s, m, al)

    @staticmethod
    def _param_grads(ctx, gi, gm, s, m, al):
        """(∂L/∂V, ∂L/∂α, None x 6): time-batched products over the whole layer."""
        T, B, N = gi.shape
        BN, K, dt = B * N, al.shape[0], gi.dtype
        gm_flat = gm.view(T, BN)
        g_w = g_a = None
        if ctx.needs_input_grad[1]:
            g_w = gi.view(T * B, N).t() @ m.view(T * B, N)
        if ctx.needs_input_grad[2]:
            g_a = torch.zeros(K, dtype=dt)
            s_flat = s.view(T, BN)
            rows = 16  # band blocks of 16 rows: the fastest of 8-64 at the PS-MNIST shapes (less waste than 32)
            D = torch.zeros(rows, K, dtype=dt)  # D[i, K - j] summed: the diagonals j = 1..K of one block
            for r0 in range(1, T, rows):  # ∂L/∂α_j = Σ_t ⟨∂L/∂m[t], S[t-j]⟩: a band of gm Sᵀ, one block at a time
                r1 = min(r0 + rows, T)
                c0 = max(0, r0 - K)
                C = gm_flat[r0:r1] @ s_flat[c0:r1 - 1].t()  # (r1-r0, r1-1-c0): C[t-r0, t'-c0] = <gm[t], S[t']>
                if c0 == r0 - K:  # full window: row i holds j = K..1 at columns i..i+K-1, a strided view
                    R = r1 - r0
                    D[:R] += C.as_strided((R, K), (C.stride(0) + 1, 1))
                else:  # the first blocks (t < K): fewer past steps
                    j = torch.arange(r0, r1).unsqueeze(1) - torch.arange(c0, r1 - 1).unsqueeze(0)
                    band = (j >= 1) & (j <= K)
                    g_a.index_add_(0, j[band] - 1, C[band])
            g_a += D.sum(0).flip(0)
        return g_w, g_a, None, None, None, None, None, None, None
