"""ST-RSBP's forward and S-PSPs on the CPU, each ONE call into the C library of ``cpu.py`` (``rsbp_scan_body.h``).

Registered as the ``lif-rsbp`` implementations of kinds ``st-rsbp-forward`` / ``st-rsbp-response``
(:mod:`snnkit_neurons.scans`); the rule (``snnkit_rules.st_rsbp``) finds them in the implementation registry and
keeps its torch code (``rsbp_scan`` over the network's currents, ``spike_response`` of ``psp_trace`` and
``reset_weights``) as the oracle and the fallback. Both return None where the C library does not apply (not built,
``SNNKIT_CPU_KERNELS=0``, a non-CPU tensor, mixed or non-float dtypes).

* :func:`forward`: one layer of lif-rsbp, all T steps, from its input trains ``x`` (T, B, K) and feedforward
  weights (the product skips zero inputs: spikes are sparse) or from its currents (T, B, N), with a dense
  recurrence from s[t-1] and lateral inhibition. Parallel over the batch.
* :func:`spike_response`: e (B, N, K) = Σ_t A[t] ⊗ Q[t] (st_rsbp_psp.py) without the (T, B, K) traces, touching
  Q only at the steps where the post neuron fires or leaves its refractory clamp.
"""

from __future__ import annotations

import ctypes

import torch

from . import cpu


def _fn(name: str, dtype: torch.dtype):
    """The C function with its argument types set (they are not in ``cpu._load``'s list; set on each library
    loaded, since ``cpu.forget`` loads it again)."""
    f = cpu.fn(name, dtype)
    if f.argtypes is None:
        i64, i32, p = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
        real = ctypes.c_float if dtype == torch.float32 else ctypes.c_double
        if name == "rsbp_fwd":
            f.argtypes = [i64, i64, i64, i64, p, p, p, p, real, p, real, real, real, real, i32, i32, i32]
        else:
            f.argtypes = [i64, i64, i64, i64, p, p, p, real, real, real, i32, i32, i32]
        f.restype = None
    return f


def forward(x, w_ff, current, w_rec, lateral: float, tau_m: float, tau_s: float, v_th: float, t_ref: int,
            delay: bool, fire_tol: float = 1e-6):
    """Spikes s (T, B, N) of lif-rsbp, or None where the C scan does not apply.

    Input: ``current`` (T, B, N) given, or ``x`` (T, B, K) with ``w_ff`` (N, K) (then ``current`` is None);
    ``w_rec`` (N, N) (post, pre) or None; ``lateral`` w0 of -w0·Σ_{p≠i} s_p[t-1] (0: none).
    """
    src = current if current is not None else x
    T, B = src.shape[:2]
    tensors = [t for t in (x, w_ff, current, w_rec) if t is not None]
    if not cpu.usable(*tensors):
        return None
    dt = src.dtype
    N = current.shape[2] if current is not None else w_ff.shape[0]
    K = x.shape[2] if current is None else 0
    xs = x.contiguous() if current is None else None
    wffT = w_ff.detach().t().contiguous() if current is None else None
    cur = current.contiguous() if current is not None else None
    wrecT = w_rec.detach().t().contiguous() if w_rec is not None else None
    s = torch.empty(T, B, N, dtype=dt)
    nt = cpu.threads(T * B * N)
    _fn("rsbp_fwd", dt)(T, B, N, K, cpu.ptr(xs), cpu.ptr(wffT), cpu.ptr(cur), cpu.ptr(wrecT), float(lateral),
                        s.data_ptr(), 1 - 1 / tau_s, 1 - 1 / tau_m, tau_s, v_th - fire_tol, int(t_ref), int(delay),
                        min(nt, B))
    return s


def spike_response(s_post, x_pre, tau_m: float, tau_s: float, t_ref: int, delay: int):
    """e (B, N, K) of post trains ``s_post`` (T, B, N) and pre trains ``x_pre`` (T, B, K), or None where the C
    scan does not apply."""
    if not cpu.usable(s_post, x_pre):
        return None
    T, B, N = s_post.shape
    K = x_pre.shape[2]
    sp, xp = s_post.contiguous(), x_pre.contiguous()
    e = torch.zeros(B, N, K, dtype=s_post.dtype)
    nt = cpu.threads(T * B * max(N, K))
    _fn("rsbp_response", s_post.dtype)(T, B, N, K, sp.data_ptr(), xp.data_ptr(), e.data_ptr(), 1 - 1 / tau_s,
                                       1 - 1 / tau_m, tau_s, int(t_ref), int(delay), min(nt, B))
    return e
