"""``alif`` and ``nrr`` scans over preallocated buffers, as ONE autograd node per layer (:class:`AdaptiveScan`).

The recurrent input reaches the neuron in one of three ways: none; ``alif``'s diagonal self term
``w ⊙ S[t-1]`` (``self``/``srsc``), folded into the C loop; or a matrix ``R[t] = V S[t-k]`` (``dense``,
``sparse`` = V ⊙ M, ``src`` with span k), one (L·B, N) x (N, N) product per chunk of k steps into a
preallocated buffer, as ``soft_cpu.SkipScan`` does. ``alif`` adds R to its input (``I[t] + R[t]``);
``nrr``'s recurrent channel spikes on R itself.

Forward: per chunk one C call (``alif_fwd`` / ``nrr_fwd`` in ``adaptive_body.h``; with V the whole layer is one
call, ``*_span_fwd``, its products through torch's BLAS, and so is its backward, ``*_span_bwd``) that updates the
state in place and writes the spikes and what the backward needs, rounded exactly like the neurons' ``step``
(``alif.alif_step``, ``nrr.nrr_step``). Backward, in reverse time (``alif_bwd`` / ``nrr_bwd``), with x = H - A
and σ' the surrogate derivative:

``alif`` (A[t] = V_th + β a[t], a[t] = ρ a[t-1] + (1-ρ) S[t-1], U[t] = H[t] - A[t] S[t]):
    g_S = ∂L/∂S[t]|ext + (1-ρ) g_a[t+1] + w g_H[t+1] - A[t] g_U[t]     (+ V's term, see below)
    g_H = g_U[t] + σ'(x) g_S;   ∂L/∂I[t] = g_H;   g_U[t-1] = λ g_H
    g_a[t] = ρ g_a[t+1] - β (S[t] g_U[t] + σ'(x) g_S)
``nrr`` (V_f[t] = κ V[t-1] r(S[t-1]) + I[t] - γ a[t], a[t] = α a[t-1] + β S[t-1], V = V_f + R):
    g_V[t] = κ r(S[t]) g_f[t+1]    (g_f = ∂L/∂V_f)
    g_S = ∂L/∂S[t]|ext + β g_a[t+1] - r'(S[t]) κ V[t] g_f[t+1]          (r' = -1; 0 for S = 2 under ``fix``)
    g_f[t] = g_V + σ'(V_f - θ) g_S;   ∂L/∂R[t] = g_V + σ'(R - θ) g_S;   g_a[t] = α g_a[t+1] - γ g_f[t]
With a matrix V the spikes' gradient also gets G[t] = ∂L/∂R[t+k] V (one product per chunk, from the later
chunk already done), and ∂L/∂V = Σ_t ∂L/∂R[t]ᵀ S[t-k] is one product at the end (``alif``: ∂L/∂R = ∂L/∂I).

Reward propagation (``reward-prop``): with ``g_rp`` given, every spike tensor is detached and its gradient
replaced by ``g_rp[t]`` (minus the spike tensor itself with ``minus_h``), each channel's for ``nrr``. Then no
gradient reaches a spike, so only the membrane's paths remain (the modes 1 and 2 of the C backward), and the
backward is one call over the whole sequence. The node's second output z = Σ_t ⟨S[t], g⟩ (per channel) is the
scalar whose gradient (1) starts that backward: the rule adds it to the loss, as it adds Σ⟨s, g⟩ per hooked
spike tensor on the reference path.

Without the C library the same node runs torch loops per step (forward rounded like ``step``).
"""

from __future__ import annotations

import torch

from snnkit_core.contract.surrogate import surrogate_grad

from . import cpu


class ALIFKernel:
    """``alif``'s constants and its chunk loops (C, or torch ops per step)."""

    name = "alif"
    saved = ("h", "a")  # beside S: what the backward reads per step (A is recomputed from a, exactly)

    def __init__(self, neuron):
        c = neuron._consts
        self.decay, self.v_th, self.beta, self.rho = c["decay"], c["v_th"], c["beta"], c["rho"]
        self.omr = 1 - self.rho
        self.kind, self.width = neuron.surrogate

    def state(self, like):
        return [torch.zeros_like(like), torch.zeros_like(like), torch.zeros_like(like)]  # U, a, S[t-1]

    def carries(self, like):
        return [torch.zeros_like(like), torch.zeros_like(like), torch.zeros_like(like)]  # g_U, g_a, g_H[t+1]

    def fwd(self, use_c, t0, t1, cur, R, w, st, s, bufs):
        h, a = bufs
        if use_c:
            T, B, N = cur.shape
            o = t0 * B * N * cur.element_size()
            r = None if R is None else R.data_ptr() + o
            cpu.fn("alif_fwd", cur.dtype)(t1 - t0, B * N, N, cur.data_ptr() + o, r, cpu.ptr(w),
                                          *(x.data_ptr() for x in st), s.data_ptr() + o, h.data_ptr() + o,
                                          a.data_ptr() + o, self.decay, self.v_th, self.beta, self.rho, self.omr,
                                          cpu.threads((t1 - t0) * B * N))
            return
        u, av, sp = st
        for t in range(t0, t1):
            torch.add(av * self.rho, sp * self.omr, out=a[t])
            av = a[t]
            thr = av * self.beta + self.v_th
            i = cur[t] + R[t] if R is not None else cur[t] + w * sp if w is not None else cur[t]
            torch.add(u * self.decay, i, out=h[t])
            torch.ge(h[t] - thr, 0, out=s[t])
            u, sp = h[t] - thr * s[t], s[t]
        st[0].copy_(u), st[1].copy_(av), st[2].copy_(sp)

    def span_fwd(self, cur, W, R, k, st, s, bufs, gemm):
        T, B, N = cur.shape
        cpu.fn("alif_span_fwd", cur.dtype)(T, B, N, k, cur.data_ptr(), W.data_ptr(), R.data_ptr(),
                                           *(x.data_ptr() for x in (*st, s, *bufs)), self.decay, self.v_th, self.beta,
                                           self.rho, self.omr, gemm)

    def span_bwd(self, gs, W, G, k, s, bufs, cr, gi, gr, R, gemm):
        T, B, N = s.shape
        ptrs = (x.data_ptr() for x in (*bufs, W, G, cr[0], cr[1], gi))
        cpu.fn("alif_span_bwd", s.dtype)(T, B, N, k, cpu.ptr(gs), *ptrs, self.decay, self.v_th, self.beta,
                                         self.rho, self.omr, self.width,
                                         cpu.SURROGATE[self.kind], gemm)

    def bwd(self, use_c, t0, t1, mode, gs, G, w, s, bufs, cr, gi, gr):
        h, a = bufs
        if use_c:
            T, B, N = h.shape
            o = t0 * B * N * h.element_size()
            cpu.fn("alif_bwd", h.dtype)(t1 - t0, B * N, N, None if gs is None else gs.data_ptr() + o,
                                        None if G is None else G.data_ptr(), h.data_ptr() + o, a.data_ptr() + o,
                                        cpu.ptr(w), *(x.data_ptr() for x in cr), gi.data_ptr() + o, self.decay,
                                        self.v_th, self.beta, self.rho, self.omr, self.width, cpu.SURROGATE[self.kind],
                                        mode, cpu.threads((t1 - t0) * B * N))
            return
        thr = a[t0:t1] * self.beta + self.v_th
        x = h[t0:t1] - thr
        sg = surrogate_grad(x, self.kind, self.width)
        g_u, g_a, g_hn = cr
        for t in range(t1 - 1, t0 - 1, -1):
            j = t - t0
            if mode:
                g_s = G[j] - s[t] if mode == 2 else G[j]
            else:
                g_s = g_a * self.omr - thr[j] * g_u
                g_s = sum(x for x in (g_s, None if gs is None else gs[t], None if G is None else G[j],
                                      None if w is None else w * g_hn) if x is not None)
                g_a = g_a * self.rho + (-(s[t] * g_u) - sg[j] * g_s) * self.beta
            torch.add(g_u, sg[j] * g_s, out=gi[t])
            g_u, g_hn = gi[t] * self.decay, gi[t]
        cr[0].copy_(g_u), cr[1].copy_(g_a), cr[2].copy_(g_hn)


class NRRKernel:
    """``nrr``'s constants and its chunk loops (C, or torch ops per step)."""

    name = "nrr"
    saved = ("vf",)

    def __init__(self, neuron):
        c = neuron._consts
        self.decay, self.v_th, self.alpha, self.beta, self.gamma = (c[k] for k in ("decay", "v_th", "alpha", "beta",
                                                                                   "gamma"))
        self.quirk = c["reset"] == "quirk"
        self.kind, self.width = neuron.surrogate

    def state(self, like):
        return [torch.zeros_like(like), torch.zeros_like(like), torch.zeros_like(like)]  # V, S[t-1], a

    def carries(self, like):
        return [torch.zeros_like(like), torch.zeros_like(like)]  # g_f[t+1], g_a[t+1]

    def keep(self, S):
        return 1 - S if self.quirk else 1 - S.clamp(max=1)

    def fwd(self, use_c, t0, t1, cur, R, w, st, s, bufs):
        (vf,) = bufs
        if use_c:
            T, B, N = cur.shape
            o = t0 * B * N * cur.element_size()
            r = None if R is None else R.data_ptr() + o
            cpu.fn("nrr_fwd", cur.dtype)(t1 - t0, B * N, cur.data_ptr() + o, r,
                                         *(x.data_ptr() for x in st), s.data_ptr() + o, vf.data_ptr() + o, self.decay,
                                         self.v_th, self.alpha, self.beta, self.gamma, int(self.quirk),
                                         cpu.threads((t1 - t0) * B * N))
            return
        v, sp, a = st
        for t in range(t0, t1):
            a = a * self.alpha + sp * self.beta
            torch.sub(v * self.decay * self.keep(sp) + cur[t], a * self.gamma, out=vf[t])
            torch.gt(vf[t] - self.v_th, 0, out=s[t])
            v = vf[t]
            if R is not None:
                s[t] += (R[t] - self.v_th > 0).to(s.dtype)
                v = vf[t] + R[t]
            sp = s[t]
        st[0].copy_(v), st[1].copy_(sp), st[2].copy_(a)

    def span_fwd(self, cur, W, R, k, st, s, bufs, gemm):
        T, B, N = cur.shape
        cpu.fn("nrr_span_fwd", cur.dtype)(T, B, N, k, cur.data_ptr(), W.data_ptr(), R.data_ptr(),
                                          *(x.data_ptr() for x in (*st, s, *bufs)), self.decay, self.v_th, self.alpha,
                                          self.beta, self.gamma, int(self.quirk), gemm)

    def span_bwd(self, gs, W, G, k, s, bufs, cr, gi, gr, R, gemm):
        T, B, N = s.shape
        ptrs = (x.data_ptr() for x in (s, *bufs, R, W, G, *cr, gi, gr))
        cpu.fn("nrr_span_bwd", s.dtype)(T, B, N, k, cpu.ptr(gs), *ptrs, self.decay, self.v_th, self.alpha,
                                        self.beta, self.gamma, int(self.quirk),
                                        self.width, cpu.SURROGATE[self.kind], gemm)

    def bwd(self, use_c, t0, t1, mode, gs, G, w, s, bufs, cr, gi, gr, R=None):
        (vf,) = bufs
        if use_c:
            T, B, N = vf.shape
            o = t0 * B * N * vf.element_size()
            cpu.fn("nrr_bwd", vf.dtype)(t1 - t0, B * N, None if gs is None else gs.data_ptr() + o,
                                        None if G is None else G.data_ptr(), s.data_ptr() + o, vf.data_ptr() + o,
                                        None if R is None else R.data_ptr() + o, *(x.data_ptr() for x in cr),
                                        gi.data_ptr() + o, None if gr is None else gr.data_ptr() + o, self.decay,
                                        self.v_th, self.alpha, self.beta, self.gamma, int(self.quirk), self.width,
                                        cpu.SURROGATE[self.kind], mode, cpu.threads((t1 - t0) * B * N))
            return
        self._bwd_torch(t0, t1, mode, gs, G, s, vf, R, cr, gi, gr)

    def _bwd_torch(self, t0, t1, mode, gs, G, s, vf, R, cr, gi, gr):
        sgf = surrogate_grad(vf[t0:t1] - self.v_th, self.kind, self.width)
        sgr = surrogate_grad(R[t0:t1] - self.v_th, self.kind, self.width) if R is not None else None
        g_n, g_a = cr
        for t in range(t1 - 1, t0 - 1, -1):
            j, S = t - t0, s[t]
            g_v = (self.keep(S) * g_n) * self.decay
            if mode:
                g_f = g_r = G[j]
                if mode == 2:
                    g_f = g_f - (vf[t] - self.v_th > 0).to(g_f.dtype)
                    g_r = g_r - (R[t] - self.v_th > 0).to(g_r.dtype) if R is not None else g_r
            else:
                g_keep = g_n * ((vf[t] + R[t] if R is not None else vf[t]) * self.decay)
                g_f = g_a * self.beta - (g_keep if self.quirk else g_keep * (S <= 1))
                g_f = sum(x for x in (g_f, None if gs is None else gs[t], None if G is None else G[j]) if x is not None)
                g_r = g_f
            torch.add(g_v, sgf[j] * g_f, out=gi[t])
            if R is not None:
                torch.add(g_v, sgr[j] * g_r, out=gr[t])
            if not mode:
                g_a = g_a * self.alpha - gi[t] * self.gamma
            g_n = gi[t]
        cr[0].copy_(g_n), cr[1].copy_(g_a)


def _forward(kern, cur, w, weight, k, use_c):
    """The whole forward: (S, the saved buffers, R or None)."""
    T, B, N = cur.shape
    s = torch.empty_like(cur)
    bufs = [torch.empty_like(cur) for _ in kern.saved]
    st = kern.state(cur[0])
    if weight is None:
        kern.fwd(use_c, 0, T, cur, None, w, st, s, bufs)
        return s, bufs, None
    R = torch.empty_like(cur)  # R[t] = V S[t-k]: zero for t < k, then one product per chunk
    gemm = cpu.gemm(cur.dtype) if use_c and weight.dtype == cur.dtype else None
    if gemm is not None:  # the whole forward in one C call, the products through torch's BLAS on this thread
        with cpu.one_blas_thread():
            kern.span_fwd(cur, weight.detach().contiguous(), R, k, st, s, bufs, gemm)
        return s, bufs, R
    R[:k].zero_()
    wt, s_rows, r_rows = weight.detach().t(), s.view(T * B, N), R.view(T * B, N)
    for t0 in range(0, T, k):
        t1 = min(t0 + k, T)
        if t0 > 0:
            torch.mm(s_rows[(t0 - k) * B:(t1 - k) * B], wt, out=r_rows[t0 * B:t1 * B])
        kern.fwd(use_c, t0, t1, cur, R, None, st, s, bufs)
    return s, bufs, R


def _backward(kern, mode, gs, g_rp, w, weight, k, s, bufs, R, use_c):
    """∂L/∂I and ∂L/∂R (the same tensor for ``alif``, None without a matrix V)."""
    T, B, N = s.shape
    gi = torch.empty_like(s)
    gr = None if R is None else gi if kern.name == "alif" else torch.empty_like(s)
    cr = kern.carries(s[0])
    extra = {"R": R} if kern.name == "nrr" else {}
    if weight is None or mode:  # no gradient reaches a spike through V: the whole sequence in one call
        kern.bwd(use_c, 0, T, mode, gs, g_rp, w, s, bufs, cr, gi, gr, **extra)
        return gi, gr
    wd = weight.detach()
    G = torch.empty(min(k, T) * B, N, dtype=s.dtype)  # ∂L/∂S of the chunk through the later chunk's R
    gemm = cpu.gemm(s.dtype) if use_c and wd.dtype == s.dtype else None
    if gemm is not None:  # the whole reverse scan in one C call, the products through torch's BLAS on this thread
        with cpu.one_blas_thread():
            kern.span_bwd(gs, wd.contiguous(), G, k, s, bufs, cr, gi, gr, R, gemm)
        return gi, gr
    gr_rows = gr.view(T * B, N)
    for t0 in reversed(range(0, T, k)):
        t1 = min(t0 + k, T)
        n = min(t1 + k, T) - (t0 + k)  # steps of this chunk that feed a later step
        if n > 0:
            torch.mm(gr_rows[(t0 + k) * B:(t0 + k + n) * B], wd, out=G[:n * B])
            G[n * B:(t1 - t0) * B].zero_()
        kern.bwd(use_c, t0, t1, 0, gs, G.view(-1, B, N) if n > 0 else None, None, s, bufs, cr, gi, gr, **extra)
    return gi, gr


class AdaptiveScan(torch.autograd.Function):
    """(I (T,B,N), w (N,) or None, V (N,N) or None, g_rp (T,B,N) or None) -> (S, z): one ``alif``/``nrr`` layer.

    ``w``: ``alif``'s diagonal self term; ``V``: the recurrent matrix with span ``k``; ``g_rp``: reward-prop's
    replaced spike gradient (then S carries no gradient and z = Σ⟨S, g⟩ starts the backward); ``kern``: an
    :class:`ALIFKernel` or :class:`NRRKernel`; ``use_c``: the C library where it is loaded, else torch loops.
    """

    @staticmethod
    def forward(ctx, current, w, weight, g_rp, kern, k, minus_h, use_c):
        cur = current.contiguous()
        wv = None if w is None else w.detach().to(cur.dtype).contiguous()
        use_c = use_c and cpu.usable(cur)
        s, bufs, R = _forward(kern, cur, wv, weight, k, use_c)
        z = cur.new_zeros(())
        if g_rp is not None:
            g_rp = g_rp.detach().contiguous()
            z = (s * g_rp).sum() - (s.sum() if minus_h else 0)  # Σ s_f² + s_r² = Σ S
            ctx.mark_non_differentiable(s)
        ctx.save_for_backward(wv, weight, g_rp, s, R, *bufs)
        ctx.cfg = (kern, k, 2 if minus_h else 1, use_c)
        ctx.set_materialize_grads(False)
        return s, z

    @staticmethod
    def backward(ctx, g_s, g_z):
        wv, weight, g_rp, s, R, *bufs = ctx.saved_tensors
        kern, k, rp_mode, use_c = ctx.cfg
        mode = 0 if g_rp is None else rp_mode
        if mode and g_z is None:
            return None, None, None, None, None, None, None, None
        gs = None if mode or g_s is None else g_s.contiguous()
        gi, gr = _backward(kern, mode, gs, g_rp, wv, weight, k, s, bufs, R, use_c)
        if mode and float(g_z) != 1.0:  # linear in the replaced gradient
            gi.mul_(g_z)
            if gr is not None and gr is not gi:
                gr.mul_(g_z)
        T, B, N = s.shape
        g_w = g_v = None
        if wv is not None and ctx.needs_input_grad[1]:
            g_w = (gi[1:] * s[:-1]).sum((0, 1)) if T > 1 else torch.zeros_like(wv)
        if weight is not None and ctx.needs_input_grad[2]:
            g_v = gr[k:].reshape(-1, N).t() @ s[:T - k].reshape(-1, N) if T > k else torch.zeros_like(weight)
        return gi, g_w, g_v, None, None, None, None, None

