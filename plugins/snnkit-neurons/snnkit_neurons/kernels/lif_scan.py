"""One Triton kernel per direction for the whole ``lif`` scan over time, with optional self-recurrence.

Per element (b, n), looping over t inside the kernel (docs/neurons/lif.md plus the ScSr self term):

    u[t]  = λ_n·ũ[t-1] + I[t] + w_n·a[t-1]        (w = 0 without self-recurrence)
    s[t]  = H(u[t] - V_th);  ũ[t] = u[t]·(1 - s[t]);  a[t] = d·a[t-1] + s[t]/τs,  d = 1 - 1/τs

The backward is surrogate-gradient BPTT of exactly these equations, reverse in time, with adjoints
carried in registers (g_a = ∂L/∂a[t], g_u = ∂L/∂u[t]):

    g_a[t] = ∂L/∂a[t]|ext + d·g_a[t+1] + w_n·g_u[t+1]
    g_ũ[t] = λ_n·g_u[t+1]
    g_s[t] = g_a[t]/τs + ∂L/∂s[t]|ext - u[t]·g_ũ[t]       (the last term is dropped with detach_reset)
    g_u[t] = (1 - s[t])·g_ũ[t] + σ'(u[t] - V_th)·g_s[t]
    ∂L/∂I[t] = g_u[t];  ∂L/∂w_n = Σ_{b,t} g_u[t]·a[t-1];  ∂L/∂λ_n = Σ_{b,t} g_u[t]·ũ[t-1]

Saved for the backward: u (float32) and s (uint8) per step; a is the forward output. Memory traffic per step
and element: read I, write a/u/s forward; read g_a, a, u, s, write g_I backward.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

KIND_CODE = {"sigmoid": 0, "triangle": 1, "fast-sigmoid": 2, "atan": 3, "rectangle": 4}
BLOCK = 256
#: no fused multiply-add: the torch reference rounds a*b+c twice, and the forward must match it bit for bit
NO_FMA = {"enable_fp_fusion": False}


def on_device(device: torch.device):
    """Launch on the tensors' GPU (Triton launches on the *current* CUDA device otherwise)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


@triton.jit
def surrogate_derivative(x, width, KIND: tl.constexpr):
    if KIND == 0:
        sg = 1.0 / (1.0 + tl.exp(-x / width))
        return sg * (1.0 - sg) / width
    elif KIND == 1:
        return tl.maximum(width - tl.abs(x), 0.0) / (width * width)
    elif KIND == 2:
        d = width + tl.abs(x)
        return 0.5 * width / (d * d)
    elif KIND == 3:
        z = 3.141592653589793 * x / width
        return (1.0 / width) / (1.0 + z * z)
    else:
        return tl.where(tl.abs(x) < width * 0.5, 1.0 / width, 0.0)


@triton.jit
def _lif_fwd(i_ptr, leak_ptr, w_ptr, a_ptr, s_ptr, u_ptr, T, BN, N, decay, inv_tau_s, v_th,
             HAS_W: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < BN
    n = offs % N
    lam = tl.load(leak_ptr + n, mask=mask, other=0.0)
    w = tl.load(w_ptr + n, mask=mask, other=0.0) if HAS_W else 0.0
    ur = tl.zeros([BLOCK], dtype=tl.float32)
    a = tl.zeros([BLOCK], dtype=tl.float32)
    for t in range(T):
        base = t * BN + offs
        i = tl.load(i_ptr + base, mask=mask, other=0.0)
        if HAS_W:
            i = i + w * a  # the same association as the reference: λ·ũ + (I + w·a)
        u = lam * ur + i
        s = (u > v_th).to(tl.float32)
        ur = u * (1.0 - s)
        a = decay * a + s * inv_tau_s
        tl.store(a_ptr + base, a, mask=mask)
        tl.store(u_ptr + base, u, mask=mask)
        tl.store(s_ptr + base, s.to(tl.uint8), mask=mask)


@triton.jit
def _lif_bwd(ga_ptr, gs_ptr, a_ptr, s_ptr, u_ptr, leak_ptr, w_ptr, gi_ptr, gleak_ptr, gw_ptr,
             T, BN, N, decay, inv_tau_s, v_th, width,
             HAS_W: tl.constexpr, HAS_GS: tl.constexpr, DETACH: tl.constexpr, KIND: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < BN
    n = offs % N
    lam = tl.load(leak_ptr + n, mask=mask, other=0.0)
    w = tl.load(w_ptr + n, mask=mask, other=0.0) if HAS_W else 0.0
    g_a_next = tl.zeros([BLOCK], dtype=tl.float32)
    g_u_next = tl.zeros([BLOCK], dtype=tl.float32)
    acc_w = tl.zeros([BLOCK], dtype=tl.float32)
    acc_lam = tl.zeros([BLOCK], dtype=tl.float32)
    for k in range(T):
        t = T - 1 - k
        base = t * BN + offs
        u = tl.load(u_ptr + base, mask=mask, other=0.0)
        s = tl.load(s_ptr + base, mask=mask, other=0).to(tl.float32)
        g_a = tl.load(ga_ptr + base, mask=mask, other=0.0) + decay * g_a_next
        if HAS_W:
            g_a = g_a + w * g_u_next
        g_ur = lam * g_u_next
        g_s = g_a * inv_tau_s
        if HAS_GS:
            g_s = g_s + tl.load(gs_ptr + base, mask=mask, other=0.0)
        if not DETACH:
            g_s = g_s - u * g_ur
        g_u = (1.0 - s) * g_ur + surrogate_derivative(u - v_th, width, KIND) * g_s
        tl.store(gi_ptr + base, g_u, mask=mask)
        prev = base - BN
        has_prev = mask & (prev >= 0)  # t > 0
        a_prev = tl.load(a_ptr + prev, mask=has_prev, other=0.0)
        u_prev = tl.load(u_ptr + prev, mask=has_prev, other=0.0)
        s_prev = tl.load(s_ptr + prev, mask=has_prev, other=0).to(tl.float32)
        acc_w += g_u * a_prev
        acc_lam += g_u * u_prev * (1.0 - s_prev)
        g_a_next = g_a
        g_u_next = g_u
    tl.store(gleak_ptr + offs, acc_lam, mask=mask)
    if HAS_W:
        tl.store(gw_ptr + offs, acc_w, mask=mask)


class LIFScan(torch.autograd.Function):
    """(I (T,B,N), leak (N,), w (N,) or None) -> (a, s); s is float 0/1."""

    @staticmethod
    def forward(ctx, current, leak, w, tau_s, v_th, kind, width, detach_reset):
        T, B, N = current.shape
        cur = current.contiguous().float()
        lam = leak.detach().contiguous().float()
        has_w = w is not None
        wv = w.detach().contiguous().float() if has_w else lam  # dummy pointer when unused
        a = torch.empty_like(cur)
        u = torch.empty_like(cur)
        s = torch.empty(cur.shape, dtype=torch.uint8, device=cur.device)
        grid = (triton.cdiv(B * N, BLOCK),)
        with on_device(cur.device):
            _lif_fwd[grid](cur, lam, wv, a, s, u, T, B * N, N, 1 - 1 / tau_s, 1 / tau_s, v_th, HAS_W=has_w, BLOCK=BLOCK,
                           **NO_FMA)
        ctx.save_for_backward(a, s, u, lam, wv)
        ctx.cfg = (tau_s, v_th, kind, width, detach_reset, has_w, current.dtype)
        s_out = s.to(current.dtype)
        return a.to(current.dtype), s_out

    @staticmethod
    def backward(ctx, g_a, g_s):
        a, s, u, lam, wv = ctx.saved_tensors
        tau_s, v_th, kind, width, detach_reset, has_w, dtype = ctx.cfg
        T, B, N = a.shape
        g_a = (g_a if g_a is not None else torch.zeros_like(a)).contiguous().float()
        has_gs = g_s is not None
        g_s_t = g_s.contiguous().float() if has_gs else g_a
        g_i = torch.empty_like(a)
        g_lam = torch.empty(B * N, device=a.device, dtype=torch.float32)
        g_w = torch.empty(B * N, device=a.device, dtype=torch.float32) if has_w else g_lam
        grid = (triton.cdiv(B * N, BLOCK),)
        with on_device(a.device):
            _lif_bwd[grid](g_a, g_s_t, a, s, u, lam, wv, g_i, g_lam, g_w, T, B * N, N, 1 - 1 / tau_s, 1 / tau_s, v_th,
                           width, HAS_W=has_w, HAS_GS=has_gs, DETACH=detach_reset, KIND=KIND_CODE[kind], BLOCK=BLOCK,
                           **NO_FMA)
        g_leak = g_lam.view(B, N).sum(0)
        g_wv = g_w.view(B, N).sum(0) if has_w else None
        return g_i.to(dtype), g_leak, g_wv, None, None, None, None, None


def lif_scan(current, leak, w, tau_s, v_th, kind, width, detach_reset):
    return LIFScan.apply(current, leak, w, tau_s, v_th, kind, width, detach_reset)


SUPPORTED_SURROGATES = frozenset(KIND_CODE)
