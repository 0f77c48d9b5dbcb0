"""Spike-train-level post-synaptic potentials of ST-RSBP (docs/rules/st-rsbp.md, 'S-PSP'), for the ``lif-rsbp`` neuron.

The S-PSP e_ij is the unit-weight contribution of presynaptic train j to neuron i's membrane, summed over i's
firing times, with i's own resets and refractory clamps applied. Per pair (i, j), t = 0 … T-1:

    p ← p(1 - 1/τs) + s_j[t - d];   q ← q(1 - 1/τm) + p/τs          (d = 1: the one-step synaptic delay)
    if i is refractory at t: q ← 0;   if s_i[t] = 1: e_ij += q, q ← 0

Because everything between two zeroings of q is linear in s_j, this equals (no loop over pairs):

    Q_j[t] = the same filter without any zeroing (one pass per presynaptic train)
    q_ij[t] = Q_j[t] - (1 - 1/τm)^(t - r) Q_j[r]      r = the last step ≤ t at which i zeroed q (if any)
    e_ij    = Σ_t A_i[t] Q_j[t],   A_i[t_f] += 1  and  A_i[r_f] -= (1 - 1/τm)^(t_f - r_f) for every spike t_f
                                   after the first, r_f = min(t_{f-1} + T_ref, t_f) (the end of the refractory clamp)

so e = einsum('tbi,tbj->bij', A, Q): one batched product per layer. By superposition the neuron's potential
at its firing times is v_i(t_f) = Σ_j w_ij q_ij(t_f) (plus the recurrent terms), hence the identity

    a_i = Σ_j w_ij e_ij (+ Σ_p w_ip e_ip) = Σ_f v_i(t_f)            [P eq. 1; tested]

Units: τm, τs, T_ref in steps; e in units of membrane potential per unit weight.
"""

from __future__ import annotations

import torch


def psp_trace(s_pre: torch.Tensor, tau_m: float, tau_s: float, delay: int = 1) -> torch.Tensor:
    """Q (T, B, N): the unreset membrane response to each presynaptic train ``s_pre`` (T, B, N) with unit weight,
    in the neuron's own arithmetic order (ep ← ep·(1-1/τs) + s[t-d]; v ← v·(1-1/τm) + ep/τs)."""
    T = s_pre.shape[0]
    out = torch.empty_like(s_pre)
    p = torch.zeros_like(s_pre[0])
    q = torch.zeros_like(s_pre[0])
    ds, dm = 1 - 1 / tau_s, 1 - 1 / tau_m
    for t in range(T):
        p = p * ds
        if t - delay >= 0:
            p = p + s_pre[t - delay]
        q = q * dm + p / tau_s
        out[t] = q
    return out


def reset_weights(s_post: torch.Tensor, tau_m: float, t_ref: int) -> torch.Tensor:
    """A (T, B, N): +1 at each spike of ``s_post`` (0/1, (T, B, N)), and -(1-1/τm)^(t_f - r_f) at r_f, the last
    step at which the neuron zeroed q before its spike t_f (spikes after the first only). See the module doc."""
    T = s_post.shape[0]
    fired = s_post > 0
    A = fired.to(s_post.dtype).clone()
    steps = torch.arange(T, device=s_post.device).view(T, *([1] * (s_post.ndim - 1))).expand(s_post.shape)
    last = torch.where(fired, steps, torch.full_like(steps, -1)).cummax(0).values  # last spike at or before t
    prev = torch.cat([torch.full_like(last[:1], -1), last[:-1]])  # last spike strictly before t
    sel = fired & (prev >= 0)
    if bool(sel.any()):
        idx = sel.nonzero(as_tuple=True)
        t_f = idx[0]
        r = torch.minimum(prev[sel] + t_ref, t_f)
        decay = torch.full(t_f.shape, 1 - 1 / tau_m, dtype=s_post.dtype, device=s_post.device).pow((t_f - r).to(s_post.dtype))
        A.index_put_((r, *idx[1:]), -decay, accumulate=True)
    return A


def spike_response(A: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """e (B, N_post, N_pre) = Σ_t A[t] ⊗ Q[t] from :func:`reset_weights` (T, B, N_post) and :func:`psp_trace`
    (T, B, N_pre)."""
    return torch.einsum("tbi,tbj->bij", A, Q)


def s_psp(s_post: torch.Tensor, s_pre: torch.Tensor, tau_m: float, tau_s: float, t_ref: int, delay: int = 1) -> torch.Tensor:
    """e_ij (B, N_post, N_pre) for post trains (T, B, N_post) and pre trains (T, B, N_pre)."""
    return spike_response(reset_weights(s_post, tau_m, t_ref), psp_trace(s_pre, tau_m, tau_s, delay))


def t_psp_ratio(e: torch.Tensor, o_post: torch.Tensor, o_pre: torch.Tensor, zero_value: float = 0.5) -> torch.Tensor:
    """∂e_ij/∂o_j ≈ e_ij/o_j (the T-PSP / "effect ratio"), ``zero_value`` (0.5) where o_i or o_j is 0.
    e (B, I, J), o_post (B, I), o_pre (B, J)."""
    silent = (o_post.unsqueeze(2) == 0) | (o_pre.unsqueeze(1) == 0)
    ratio = e / torch.where(o_pre == 0, torch.ones_like(o_pre), o_pre).unsqueeze(1)
    return torch.where(silent, torch.full_like(ratio, zero_value), ratio)
