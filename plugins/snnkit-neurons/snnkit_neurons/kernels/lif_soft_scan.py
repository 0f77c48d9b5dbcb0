"""One Triton kernel per direction for an L-step ``lif-soft`` chunk (``LIFSoft.scan_chunk``).

The same equations as ``lif_soft.SoftScan`` (docs/methods/asrc.md, "Neuron lif-soft"), per element (b, n), looping
over t in the kernel:

    H[t] = λ·U[t-1] + I[t];   S[t] = Θ(H[t] - V_th) (inclusive);   U[t] = H[t] - V_th·S[t]

Backward, reverse in time, the adjoint g_U in a register (σ'_t = σ'(H[t] - V_th)):

    dL/dH[t] = g_U + σ'_t·(g_S[t] - V_th·g_U)        (detached reset: g_U + σ'_t·g_S[t])
    dL/dI[t] = dL/dH[t];   g_U ← λ·dL/dH[t];   finally dL/dU[-1] = g_U

SRC calls it once per chunk of k steps (between the chunks' recurrent GEMMs); ``dense`` and ``asrc`` once per
step. One launch per chunk and direction replaces about three torch kernels per step and direction.
Saved for the backward: H (float32) per step.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .lif_scan import BLOCK, KIND_CODE, NO_FMA, on_device, surrogate_derivative


@triton.jit
def _soft_fwd(i_ptr, u0_ptr, s_ptr, h_ptr, u_ptr, L, BN, decay, v_th, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < BN
    u = tl.load(u0_ptr + offs, mask=mask, other=0.0)
    for t in range(L):
        base = t * BN + offs
        h = decay * u + tl.load(i_ptr + base, mask=mask, other=0.0)
        s = (h >= v_th).to(tl.float32)
        u = h - v_th * s
        tl.store(h_ptr + base, h, mask=mask)
        tl.store(s_ptr + base, s, mask=mask)
    tl.store(u_ptr + offs, u, mask=mask)


@triton.jit
def _soft_bwd(gs_ptr, gu_ptr, h_ptr, gi_ptr, gu0_ptr, L, BN, decay, v_th, width,
              HAS_GS: tl.constexpr, HAS_GU: tl.constexpr, DETACH: tl.constexpr, KIND: tl.constexpr,
              BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < BN
    if HAS_GU:
        gu = tl.load(gu_ptr + offs, mask=mask, other=0.0)
    else:
        gu = tl.zeros([BLOCK], dtype=tl.float32)
    for k in range(L):
        t = L - 1 - k
        base = t * BN + offs
        sg = surrogate_derivative(tl.load(h_ptr + base, mask=mask, other=0.0) - v_th, width, KIND)
        if HAS_GS:
            gs = tl.load(gs_ptr + base, mask=mask, other=0.0)
        else:
            gs = tl.zeros([BLOCK], dtype=tl.float32)
        if DETACH:
            gh = gu + sg * gs
        else:
            gh = gu + sg * (gs - v_th * gu)
        tl.store(gi_ptr + base, gh, mask=mask)
        gu = decay * gh
    tl.store(gu0_ptr + offs, gu, mask=mask)


class SoftScanKernel(torch.autograd.Function):
    """(I (L,B,N), U[-1] (B,N)) -> (S (L,B,N), U[L-1] (B,N)), float32."""

    @staticmethod
    def forward(ctx, current, u0, decay, v_th, kind, width, detach_reset):
        L, B, N = current.shape
        cur = current.contiguous()
        u_init = u0.contiguous()
        s = torch.empty_like(cur)
        h = torch.empty_like(cur)
        u = torch.empty_like(u_init)
        grid = (triton.cdiv(B * N, BLOCK),)
        with on_device(cur.device):
            _soft_fwd[grid](cur, u_init, s, h, u, L, B * N, float(decay), float(v_th), BLOCK=BLOCK, **NO_FMA)
        ctx.save_for_backward(h)
        ctx.consts = (decay, v_th, kind, width, detach_reset)
        return s, u

    @staticmethod
    def backward(ctx, g_s, g_u):
        (h,) = ctx.saved_tensors
        decay, v_th, kind, width, detach_reset = ctx.consts
        L, B, N = h.shape
        has_gs, has_gu = g_s is not None, g_u is not None
        gs = g_s.contiguous() if has_gs else h  # dummy pointer when unused
        gu = g_u.contiguous() if has_gu else h
        g_in = torch.empty_like(h)
        g_u0 = torch.empty(B, N, device=h.device, dtype=h.dtype)
        grid = (triton.cdiv(B * N, BLOCK),)
        with on_device(h.device):
            _soft_bwd[grid](gs, gu, h, g_in, g_u0, L, B * N, float(decay), float(v_th), float(width),
                            HAS_GS=has_gs, HAS_GU=has_gu, DETACH=bool(detach_reset), KIND=KIND_CODE[kind], BLOCK=BLOCK,
                            **NO_FMA)
        return g_in, g_u0, None, None, None, None, None


def soft_scan(current, u0, decay, v_th, kind, width, detach_reset):
    return SoftScanKernel.apply(current, u0, decay, v_th, kind, width, detach_reset)


SUPPORTED_SURROGATES = frozenset(KIND_CODE)
