"""``tssl-bp``: Temporal Spike Sequence Learning via Backpropagation (Zhang & Li, NeurIPS 2020), with the
ScSr-SNN extensions (self-recurrence, l -> l+2 skips, per-neuron leak for BIP; Zhang & Li, AAAI 2021).
The method, with its equations and choices, is described in docs/rules/tssl-bp.md.

Forward of one spiking layer (the rule's own scan; identical to the ``lif`` reference scan), per neuron,
t = 0 … T-1, ũ[-1] = a[-1] = 0, θ = per-neuron leak λ = 1 - 1/τm (``neuron.leak``), d = 1 - 1/τs:

    I[t]  = W a_pre[t] + W_skip a_skip[t]            (time-batched GEMMs outside the scan)
    u[t]  = θ ⊙ ũ[t-1] + (I[t] + w_s ⊙ a[t-1])       (w_s: diagonal self weight, ``self``/``srsc`` only)
    Δu[t] = u[t] - ũ[t-1]
    s[t]  = H(u[t] - V_th);   ũ[t] = u[t]·(1 - s[t]);   a[t] = d·a[t-1] + s[t]/τs

Only the PSC a carries gradient. Backward, one reverse-time pass per layer, G[T] = 0; with conv[t] =
Σ_{k≥t} ε[k-t] g_tot[k] the kernel-filtered error that reaches a[t..T-1] (∂a[k]/∂s[t] = ε[k-t]):

Default ``backward = "surrogate"`` (docs/rules/tssl-bp.md "Why the default is not the 2021 form"):

    g_tot[t] = g_ext[t] + w_s ⊙ G[t+1]          self-recurrent term (ScSr eq. 18)
    conv[t]  = g_tot[t]/τs + d·conv[t+1]
    G[t]     = f(u[t])·conv[t]                   at every neuron and step, in every layer, f as below with w = 0.5

i.e. the 2021 form's warm-up branch everywhere (= ``backward = "2021"`` with ``warmup`` = ∞ and
``surrogate_width`` = 0.5): the same kernel loss, PSC error kernel ε and self/skip/BIP folding, but ∂s/∂u is
the smooth f(u) instead of the all-or-none 1/Δu and there is no reset carry. The all-or-none branch of the 2021
form multiplied the error by up to ``bound``·(1 + reset chain) per layer (gradient norms 24-56x larger in the
first layer than at the output on espeak digits/FSDD, 128x3 srsc, flat under this form) and left 87-91 % of
(sample, output neuron) pairs silent; validation accuracy after 4 epochs (2 seeds): FSDD 42 % (2021) vs 95 %
(this form, w = 0.2), espeak digits 39 % vs 66 %; w = 0.5 (the default) gave 97 % on FSDD and 82 % on espeak
digits (5 epochs).

``backward = "2021"`` (the final public TSSL-BP form, with the ScSr terms folded in;
bit-exact to the reference code for a plain layer):

    g_tot[t] = g_ext[t] + w_s ⊙ G[t+1]                         self-recurrent term (ScSr eq. 18)
    conv[t]  = g_tot[t]/τs + d·conv[t+1]                        = Σ_{k≥t} ε[k-t] g_tot[k], ε[n] = d^n/τs
    φ[t]     = min(1/Δu[t], bound)                              derivative bound, bound = 8
    R[t]     = φ[t]·conv[t] + c·(1-θ)·u[t]·φ[t]   if s[t] = 1   inter-neuron + intra-neuron (reset) term
             = c·θ                                 if s[t] = 0
    c        ← s[t]·R[t] + (1 - s[t])·θ·c                       the carry uses R, never the surrogate
    G[t]     = R[t]                     if a[t] ≥ warmup/τs     (warmup = 1/4)
             = f(u[t])·conv[t]          otherwise               per neuron and step (warm-up surrogate)
    f(u)     = e^z / (w·(1+e^z)²),  z = clamp((V_th - u)/w, -8, 8),  w = 0.2 (in the 2021/2020 forms)

Gradients: ∂L/∂I[t] = G[t] (autograd then gives ∂L/∂W = Σ_t G[t] a_pre[t]ᵀ, the skip-weight gradient and the
gradient to the previous layer's PSC), ∂L/∂w_s = Σ_t G[t] ⊙ a[t-1] (ScSr eq. 17),
∂L/∂θ = Σ_t G[t] ⊙ ũ[t-1] (ScSr eq. 21 with the post-reset potential; only when θ is trainable, i.e. BIP).

``backward = "hybrid"``: the 2021 form in the output layer, the surrogate form in the hidden layers.

``backward = "2020"`` is the older camera-ready-era form: with h[j] = s[j](1-θ)u[j]θ^{p-j-1}g_tot[p]
(p the next spike after j), grad_a = ε * (g_tot + h), and a layer-level warm-up: if the layer's mean spike rate
(over T, batch and neurons) > ``warmup_rate_2020`` (0.1), G = grad_a·clamp(1/Δu, ±bound_2020)·s, else
G = grad_a·f(u).

Loss, on the output layer's PSC a_out (T, B, K):

* ``kernel`` (default): L = ½ Σ_t Σ_i (a_out,i[t] - target_i[t])², target = ε*ε*d (``desired_filter =
  "double"``, the reference code's behaviour) or ε*d (``"single"``, the paper's). d: the target neuron gets
  [0,1]×5 tiled T/10 times (T must be a multiple of 10; for T < 10 the 5-step pattern ``short_pattern``
  tiled T/5 times), other neurons get no spikes.
* ``count``: c_i = Σ_t a_out,i[t], δ_i = (c_i - y_i)/T with y_i = ``desired_count`` / ``undesired_count``,
  δ = 0 where the target fires more / a non-target less than asked; L = ½ Σ_t Σ_i δ_i², ∂L/∂a_out,i[t] = δ_i.
* ``softmax``: cross-entropy on Σ_t a_out[t].

``reduction = "sum"`` (default, as the reference) back-propagates the batch sum; the loss value returned (and
logged) is always per sample. Prediction: argmax_i Σ_t a_out,i[t].

Recipe (each switchable): AdamW(β = 0.9, 0.999, weight_decay 0.01), clip_grad_norm(all trainable
parameters, 1.0) after autograd, weights (feedforward, skip and self weights; not the leak) clamped to
[-4, 4] after every step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snnkit_core import Compatibility, LearningRule, Param
from snnkit_core.contract.compat import Reason
from snnkit_core.contract.errors import IncompatibleError
from snnkit_core.contract.implementations import find
from snnkit_rules.optim import adam
from snnkit_rules.schedules import make_schedule, schedule_params

# ----------------------------------------------------------------------------------------- layer scan


def tssl_forward(current, w_s, leak, tau_s, v_th):
    """The LIF scan of ``lif`` (+ optional diagonal self term). Returns u, s, a, ũ_prev, all (T, B, N).

    The arithmetic is written in the same order as ``lif_step`` + ``SelfRecurrence`` so it equals the
    reference scan bit for bit.
    """
    T, B, N = current.shape
    u_all = torch.empty_like(current)
    s_all = torch.empty_like(current)
    a_all = torch.empty_like(current)
    ur_prev = torch.empty_like(current)
    ur = current.new_zeros(B, N)
    a = current.new_zeros(B, N)
    decay = 1 - 1 / tau_s
    for t in range(T):
        i_t = current[t] if w_s is None else current[t] + w_s * a
        ur_prev[t] = ur
        u = leak * ur + i_t
        s = (u - v_th > 0).to(current.dtype)
        ur = u * (1 - s)
        a = decay * a + s / tau_s
        u_all[t], s_all[t], a_all[t] = u, s, a
    return u_all, s_all, a_all, ur_prev


def warmup_surrogate(u, v_th, width):
    """f(u) = d/du sigmoid((u - V_th)/w), with the exponent clamped to [-8, 8] as in the reference."""
    z = ((v_th - u) / width).clamp(-8.0, 8.0)
    ez = torch.exp(z)
    return ez / (width * (1 + ez) ** 2)


def tssl_backward(g_ext, u, s, a, ur_prev, w_s, leak, tau_s, v_th, opts):
    """Reverse-time pass of the ``opts['backward']`` form (``surrogate``, ``2021`` or ``2020``; see the module
    docstring), with the self-recurrent folding and per-neuron leak. Returns G = ∂L/∂I, (T, B, N)."""
    f = warmup_surrogate(u, v_th, opts["width"])
    if opts["backward"] == "surrogate":
        return _backward_surrogate(g_ext, f, w_s, tau_s, opts)
    if opts["backward"] == "2021":
        return _backward_2021(g_ext, u, s, a, ur_prev, w_s, leak, tau_s, f, opts)
    return _backward_2020(g_ext, u, s, ur_prev, w_s, leak, tau_s, f, opts)


def _reverse_pass(g_ext, w_s, tau_s, step):
    """G (T, B, N) from t = T-1 down to 0: ``step(t, g_tot[t]) -> G[t]``, g_tot[t] = g_ext[t] + w_s ⊙ G[t+1]."""
    G = torch.empty_like(g_ext)
    G_next = torch.zeros_like(g_ext[0])
    for t in range(g_ext.shape[0] - 1, -1, -1):
        g = g_ext[t] if w_s is None else g_ext[t] + w_s * G_next
        G_next = step(t, g)
        G[t] = G_next
    return G


def _backward_surrogate(g_ext, f, w_s, tau_s, opts):
    """The surrogate branch at every (neuron, step): G[t] = f(u[t])·conv[t] (the 2021 warm-up branch everywhere)."""
    e0, d = 1 / tau_s, 1 - 1 / tau_s
    conv = torch.zeros_like(g_ext[0])

    def step(t, g):
        nonlocal conv
        conv = e0 * g + d * conv
        return f[t] * conv

    G = _reverse_pass(g_ext, w_s, tau_s, step)
    if opts.get("stats") is not None:
        opts["stats"].branches(opts["layer"], exact_spike=0.0, exact_silent=0.0, bounded=0.0)
    return G


def _backward_2021(g_ext, u, s, a, ur_prev, w_s, leak, tau_s, f, opts):
    """The final public form: all-or-none φ·conv plus the reset carry where a[t] ≥ warmup/τs, else f(u)·conv."""
    e0, d = 1 / tau_s, 1 - 1 / tau_s
    theta = leak.detach()
    du = u - ur_prev
    phi = torch.where(s > 0, 1 / torch.where(s > 0, du, torch.ones_like(du)), torch.zeros_like(du))
    phi = phi.clamp(max=opts["bound"])
    A = s * phi  # inter-neuron factor at spikes
    Lk = (1 - s) * theta  # leak path between spikes
    P = s * (1 - theta) * u * phi + Lk  # intra-neuron factor at spikes, + leak path elsewhere
    warm = a < opts["warmup"] / tau_s
    M = (~warm).to(u.dtype)
    Fm = warm.to(u.dtype) * f
    conv = torch.zeros_like(u[0])
    c = torch.zeros_like(u[0])

    def step(t, g):
        nonlocal conv, c
        conv = e0 * g + d * conv
        R = A[t] * conv + P[t] * c
        c = s[t] * R + Lk[t] * c
        return M[t] * R + Fm[t] * conv

    G = _reverse_pass(g_ext, w_s, tau_s, step)
    if opts.get("stats") is not None:
        opts["stats"].branches(opts["layer"], exact_spike=(M * s).mean(), exact_silent=(M * (1 - s)).mean(),
                               bounded=(M * s * (phi >= opts["bound"])).mean())
    return G


def _backward_2020(g_ext, u, s, ur_prev, w_s, leak, tau_s, f, opts):
    """The older form: h[j] = s[j](1-θ)u[j]θ^{p-j-1}g_tot[p] and a layer-level warm-up on the mean spike rate."""
    e0, d = 1 / tau_s, 1 - 1 / tau_s
    theta = leak.detach()
    du = u - ur_prev
    active = float(s.mean()) > opts["warmup_rate_2020"]
    if active:
        phi = torch.where(s > 0, 1 / torch.where(s > 0, du, torch.ones_like(du)), torch.zeros_like(du))
        factor = phi.clamp(-opts["bound_2020"], opts["bound_2020"]) * s
    else:
        factor = f
    stats = opts.get("stats")
    if stats is not None:
        sm = s.mean()  # the 2020 form has already synchronised on it (``active``)
        stats.branches(opts["layer"], exact_spike=sm if active else 0.0, exact_silent=(1 - sm) if active else 0.0,
                       bounded=(s * (phi.abs() >= opts["bound_2020"])).mean() if active else 0.0)
    Hk = s * (1 - theta) * u  # h[j] = Hk[j]·cg, cg = θ^{p-j-1} g_tot[p]
    Lk = (1 - s) * theta
    conv = torch.zeros_like(u[0])
    cg = torch.zeros_like(u[0])

    def step(t, g):
        nonlocal conv, cg
        conv = e0 * (g + Hk[t] * cg) + d * conv
        cg = s[t] * g + Lk[t] * cg
        return conv * factor[t]

    return _reverse_pass(g_ext, w_s, tau_s, step)


class TrainingStats:
    """Per-epoch training diagnostics, per spiking layer (the output layer last), gathered during training
    steps only (evaluation does not count):

    * ``spike_rate``: spikes per (sample, neuron, step);
    * ``silent``: share of (sample, neuron) pairs with no spike in the whole sample;
    * ``saturated``: share of (sample, neuron) pairs that spike on at least half of the steps;
    * ``exact_spike`` / ``exact_silent`` / ``surrogate``: share of (sample, neuron, step) entries whose ∂L/∂I comes
      from the exact all-or-none branch at a spike (φ·conv + reset carry), from the exact branch between spikes
      (only the leak-path carry; 0 in the 2020 form), or from the surrogate f(u)·conv;
    * ``bounded``: share of entries at a spike where φ = 1/Δu hit its bound;
    * ``grad_norm``: L2 norm of the layer's parameter gradients (W, skip W, w_s, θ) before clipping, mean over
      steps, and ``grad_norm_max``.

    Cost: a few reductions over tensors the layer already holds, once per training step; the sums stay on the
    device until :meth:`summary` (no extra host synchronisation per step).
    """

    KEYS = ("spike_rate", "silent", "saturated", "exact_spike", "exact_silent", "bounded", "grad_norm")

    def __init__(self):
        self.reset()

    def reset(self):
        self.sums: dict[int, dict[str, float]] = {}
        self.counts: dict[int, dict[str, int]] = {}
        self.gmax: dict[int, float] = {}

    def _add(self, layer, key, value):
        """value: a float or a 0-d tensor (kept on its device: no host synchronisation per step)."""
        if isinstance(value, torch.Tensor):
            value = value.detach()
        self.sums.setdefault(layer, {}).setdefault(key, 0.0)
        self.counts.setdefault(layer, {}).setdefault(key, 0)
        self.sums[layer][key] += value
        self.counts[layer][key] += 1

    def forward(self, layer, s):
        """s (T, B, N) spikes of one training step."""
        per = s.mean(0)  # (B, N) rate per sample and neuron
        self._add(layer, "spike_rate", per.mean())
        self._add(layer, "silent", (per == 0).to(s.dtype).mean())
        self._add(layer, "saturated", (per >= 0.5).to(s.dtype).mean())

    def branches(self, layer, exact_spike, exact_silent, bounded):
        self._add(layer, "exact_spike", exact_spike)
        self._add(layer, "exact_silent", exact_silent)
        self._add(layer, "bounded", bounded)

    def grad(self, layer, norm):
        self._add(layer, "grad_norm", norm)
        norm = norm.detach()
        self.gmax[layer] = norm if layer not in self.gmax else torch.maximum(self.gmax[layer], norm)

    def summary(self, names):
        out = {}
        for i, name in enumerate(names):
            if i not in self.sums:
                continue
            d = {k: float(self.sums[i][k]) / self.counts[i][k] for k in self.KEYS if k in self.sums[i]}
            if "exact_spike" in d:
                d["surrogate"] = max(0.0, 1.0 - d["exact_spike"] - d["exact_silent"])
            if i in self.gmax:
                d["grad_norm_max"] = float(self.gmax[i])
            out[name] = {k: round(v, 6) for k, v in d.items()}
        return out


class TSSLScan(torch.autograd.Function):
    """One spiking layer: forward = the ``lif`` scan (+ self term), backward = TSSL-BP.

    Inputs: current (T, B, N), w_s (N,) or None, leak (N,), tau_s, v_th, opts. Outputs (a, s); only a carries
    gradient. On the CPU the forward and the backward are each one call into C (the ``lif`` implementations of kind
    ``tssl-bp-forward`` / ``tssl-bp-backward`` that snnkit-neurons registers: identical spikes and PSC, gradients
    equal to rounding); elsewhere, or without the C library, the torch loops
    :func:`tssl_forward` / :func:`tssl_backward` (the oracle) run. Saved: u, s, a (ũ[t-1] is recomputed).
    """

    @staticmethod
    def forward(ctx, current, w_s, leak, tau_s, v_th, opts):
        c_fwd = find("lif", "tssl-bp-forward", current.device.type)  # found once per process (cached availability)
        fast = c_fwd.scan(current, w_s, leak, tau_s, v_th) if c_fwd is not None else None
        if fast is not None:
            u, s, a = fast
        else:
            u, s, a, _ = tssl_forward(current, w_s, leak, tau_s, v_th)
        ctx.save_for_backward(u, s, a, w_s, leak)
        ctx.tau_s, ctx.v_th, ctx.opts = tau_s, v_th, opts
        ctx.mark_non_differentiable(s)
        ctx.set_materialize_grads(False)  # no (T, B, N) zeros for the spikes' gradient, which is never used
        return a, s

    @staticmethod
    def backward(ctx, grad_a, grad_s):
        u, s, a, w_s, leak = ctx.saved_tensors
        if grad_a is None:
            grad_a = torch.zeros_like(a)
        opts = ctx.opts
        c_bwd = find("lif", "tssl-bp-backward", u.device.type)
        fast = c_bwd.scan(grad_a, u, s, a, w_s, leak, ctx.tau_s, ctx.v_th, opts) if c_bwd is not None else None
        if fast is not None:
            G, g_ws, g_leak, cnt, active = fast
            stats = opts.get("stats")
            if stats is not None:
                n = float(u.numel())
                if opts["backward"] == "2021":
                    stats.branches(opts["layer"], exact_spike=float(cnt[0]) / n, exact_silent=float(cnt[1]) / n,
                                   bounded=float(cnt[2]) / n)
                elif opts["backward"] == "2020":
                    sm = float(s.mean())
                    stats.branches(opts["layer"], exact_spike=sm if active else 0.0,
                                   exact_silent=(1 - sm) if active else 0.0,
                                   bounded=float(cnt[2]) / n if active else 0.0)
                else:
                    stats.branches(opts["layer"], exact_spike=0.0, exact_silent=0.0, bounded=0.0)
            return (G, g_ws if w_s is not None and ctx.needs_input_grad[1] else None,
                    g_leak if ctx.needs_input_grad[2] else None, None, None, None)
        ur_prev = torch.cat([torch.zeros_like(u[:1]), u[:-1] * (1 - s[:-1])])  # ũ[t-1], as tssl_forward computed it
        G = tssl_backward(grad_a, u, s, a, ur_prev, w_s, leak, ctx.tau_s, ctx.v_th, opts)
        g_ws = g_leak = None
        if w_s is not None and ctx.needs_input_grad[1]:
            a_prev = torch.cat([torch.zeros_like(a[:1]), a[:-1]])
            g_ws = (G * a_prev).sum((0, 1))
        if ctx.needs_input_grad[2]:
            g_leak = (G * ur_prev).sum((0, 1))
        return G, g_ws, g_leak, None, None, None


def psc(x: torch.Tensor, tau_s: float) -> torch.Tensor:
    """Normalised PSC filter over time (dim 0): y[t] = (1-1/τs) y[t-1] + x[t]/τs."""
    out = torch.empty_like(x)
    y = torch.zeros_like(x[0])
    for t in range(x.shape[0]):
        y = (1 - 1 / tau_s) * y + x[t] / tau_s
        out[t] = y
    return out


def desired_spikes(T: int, short_pattern: str = "01111") -> torch.Tensor:
    """The target neuron's desired spike train, (T,) float64."""
    if T >= 10:
        if T % 10:
            raise IncompatibleError(
                f"tssl-bp's kernel loss tiles the desired pattern [0,1]x5 over T, so T must be a multiple of 10 "
                f"(or < 10); got T = {T}. Change the dataset's steps (e.g. --set dataset.steps=100) or use "
                f"--set rule.tssl-bp.loss=count"
            )
        return torch.tensor([0.0, 1.0] * 5, dtype=torch.float64).repeat(T // 10)
    if T % 5:
        raise IncompatibleError(
            f"tssl-bp's kernel loss with T < 10 tiles a 5-step pattern, so T must be 5; got T = {T}")
    return torch.tensor([float(c) for c in short_pattern], dtype=torch.float64).repeat(T // 5)


# ------------------------------------------------------------------------------------------------ rule


class TSSLBP(LearningRule):
    """TSSL-BP with ScSr-SNN self-recurrence, skips and per-neuron leak (custom reverse-time backward)."""

    name = "tssl-bp"
    description = ("TSSL-BP: kernel loss on desired spike trains, PSC-kernel backward (surrogate default; the "
                   "all-or-none 2021/2020 forms as options) (lif; ff/self/skip/srsc)")
    params = (
        Param("lr", 2e-3,
              "learning rate when --lr is not given (ScSr Table 1 N-TIDIGITS value; 5e-3 was unstable on FSDD)"),
        Param("weight_decay", 0.01, "decoupled weight decay of AdamW (the reference code's PyTorch default)"),
        Param("optimizer", "adamw", "optimizer (reference: AdamW; the ScSr paper says Adam)",
              choices=("adamw", "adam")),
        *schedule_params("none"),
        Param("backward", "surrogate", "surrogate: G = f(u)·conv at every neuron and step (default); 2021: final "
              "public all-or-none form (the reference code); 2020: older form, layer-level warm-up; "
              "hybrid: 2021 in the output layer, surrogate in hidden layers",
              choices=("2021", "2020", "hybrid", "surrogate")),
        Param("bound", 8.0, "derivative bound φ = min(1/Δu, bound) (2021 form)"),
        Param("warmup", 0.25, "per-neuron warm-up: surrogate where the neuron's PSC a[t] < warmup/τs (2021 form)"),
        Param("surrogate_width", 0.0, "width w of f(u) = d/du sigmoid((u-V_th)/w); 0: the form's own, 0.5 for the "
              "surrogate form (chosen on validation), 0.2 for the 2021/2020 branches (the reference code)"),
        Param("bound_2020", 10.0, "derivative clamp ±bound of the 2020 form"),
        Param("warmup_rate_2020", 0.1, "2020 form: exact derivative once the layer's mean spike rate exceeds this"),
        Param("loss", "kernel", "kernel (desired spike trains), count, or softmax (CE on Σ_t a_out)",
              choices=("kernel", "count", "softmax")),
        Param("desired_filter", "double", "kernel loss target: double = ε*ε*d (reference code), single = ε*d (paper)",
              choices=("double", "single")),
        Param("short_pattern", "01111", "desired pattern for T < 10 (01111: final code; 01011: paper)",
              choices=("01111", "01011")),
        Param("desired_count", 15.0, "count loss: desired Σ_t a of the target neuron"),
        Param("undesired_count", 3.0, "count loss: desired Σ_t a of the other neurons"),
        Param("reduction", "sum", "sum: back-propagate the batch sum (reference); mean: the batch mean",
              choices=("sum", "mean")),
        Param("grad_clip", 1.0, "clip the global gradient norm to this after autograd (0: off)"),
        Param("weight_clip", 4.0, "clamp feedforward, skip and self weights to [-c, c] after each step (0: off)"),
    )
    # by declared capability: a PSC neuron with a per-neuron leak (and, checked at setup, tau_s and v_th); a
    # hidden recurrence of at most a diagonal (1-step) self weight, folded into the backward; none at the output
    compatibility = Compatibility(neuron_caps=("has_psc", "has_leak"), recurrence=frozenset({"none", "diagonal"}),
                                  output_recurrence=frozenset({"none"}))
    recipe = {"neuron": "lif", "conn": "srsc"}  # ScSr-SNN: what `snnkit train --rule tssl-bp` fills in
    readout = "spiking"
    owns_scan = True  # every spiking layer runs TSSLScan; --backend triton|reference cannot apply

    # ---------------------------------------------------------------------- assembly

    def reasons(self, neuron_cls, conn_cls):
        out = []
        for r in super().reasons(neuron_cls, conn_cls):
            if r.need == "has_psc":
                r = Reason(r.rule, r.component, r.name, r.need,
                           f"rule 'tssl-bp' needs a neuron with a PSC kernel (has_psc: its output is the synaptic "
                           f"trace a[t], which the kernel loss and the all-or-none backward act on); {r.name!r} "
                           "has none")
            out.append(r)
        return out

    #: surrogate width used when ``surrogate_width`` is 0, per (resolved) backward form
    DEFAULT_WIDTH = {"surrogate": 0.5, "2021": 0.2, "2020": 0.2}

    def _opts(self, backward=None):
        """Options of one layer's backward; ``backward`` is the layer's resolved form (hybrid -> 2021/surrogate)."""
        hp = self.hparams
        form = backward or hp["backward"]
        width = hp["surrogate_width"] or self.DEFAULT_WIDTH.get(form, 0.2)
        return {
            "backward": form, "bound": hp["bound"], "warmup": hp["warmup"], "width": width,
            "bound_2020": hp["bound_2020"], "warmup_rate_2020": hp["warmup_rate_2020"],
        }

    def setup(self, network):
        if network.readout != "spiking":
            raise IncompatibleError(
                "tssl-bp trains a spiking output layer; use readout 'spiking' (the default), not 'linear'")
        for i, layer in enumerate(network.spiking_layers()):
            n = layer.neuron
            if not n.has_psc or n.leak is None or n.tau_s is None or n.v_th is None:
                raise IncompatibleError(f"tssl-bp needs a PSC neuron with leak, tau_s and v_th set (e.g. lif); "
                                        f"layer {i} has {type(n).__name__}")
            rec = layer.recurrence
            if rec is not None and (rec.structure != "diagonal" or rec.span != 1):
                raise IncompatibleError(
                    f"tssl-bp folds only a diagonal 1-step self-recurrence into its backward; layer {i} has a "
                    f"{rec.structure} recurrence with span {rec.span}. Use --conn ff, self, skip or srsc"
                )
        self.stats = TrainingStats()
        layers = list(network.spiking_layers())
        self._layer_names = [f"layer{i}" for i in range(len(layers) - 1)] + ["output"]
        self._layers = layers
        self._tau_s = float(network.output.neuron.tau_s)

    def _layer_opts(self, i: int) -> dict:
        """Layer ``i``'s backward options: ``hybrid`` resolves to 2021 at the output layer, surrogate below it."""
        form = self.hparams["backward"]
        if form == "hybrid":
            form = "2021" if i == len(self._layers) - 1 else "surrogate"
        return dict(self._opts(form), layer=i, stats=self.stats)

    def layer_scan(self, layer, default):
        """Every spiking layer runs :class:`TSSLScan` (its forward equals the reference scan)."""
        i = layer.index  # travels with the layer (a copied network plans the same per-layer options)
        opts = self._layer_opts(i)

        def scan(layer, current):
            rec = layer.recurrence
            w_s = rec.weight if rec is not None else None
            n = layer.neuron
            a, s = TSSLScan.apply(current, w_s, n.leak, float(n.tau_s), float(n.v_th), opts)
            if torch.is_grad_enabled() and layer.training:
                self.stats.forward(i, s.detach())
            return a, s

        return scan

    def check_data(self, steps, channels):
        if self.hparams["loss"] == "kernel":
            desired_spikes(steps, self.hparams["short_pattern"])  # raises IncompatibleError for a T it cannot tile

    # ---------------------------------------------------------------------- loss

    def target(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The kernel loss target (T, B, K) for labels y."""
        T, B, K = out.shape
        d = desired_spikes(T, self.hparams["short_pattern"]).to(out)
        filt = psc(d, self._tau_s)
        if self.hparams["desired_filter"] == "double":
            filt = psc(filt, self._tau_s)
        tgt = out.new_zeros(T, B, K)
        tgt[:, torch.arange(B, device=out.device), y] = filt[:, None].expand(T, B)
        return tgt

    def _per_sample_losses(self, a, y):
        kind = self.hparams["loss"]
        if kind == "kernel":
            return 0.5 * ((a - self.target(a, y)) ** 2).sum((0, 2))
        if kind == "softmax":
            return F.cross_entropy(a.sum(0), y, reduction="none")
        T, B, K = a.shape
        rows = torch.arange(B, device=a.device)
        want = a.new_full((B, K), self.hparams["undesired_count"])
        want[rows, y] = self.hparams["desired_count"]
        delta = (a.sum(0) - want) / T
        is_tgt = torch.zeros_like(delta, dtype=torch.bool)
        is_tgt[rows, y] = True
        delta = torch.where((is_tgt & (delta > 0)) | (~is_tgt & (delta < 0)), torch.zeros_like(delta), delta)
        dd = delta.detach()
        value = 0.5 * T * (dd**2).sum(1)
        # value as the spec's L, gradient ∂L/∂a[t] = δ for every t (the reference treats ∂δ/∂a as identity)
        lin = (dd.unsqueeze(0) * a).sum((0, 2))
        return value + lin - lin.detach()

    def loss(self, output, target):
        return self._per_sample_losses(output.out, target).mean()

    def logits(self, output):
        return output.out.sum(0)

    def grad_reduction(self):
        return self.hparams["reduction"]

    def backward(self, loss, output, target, network):
        scale = len(target) if self.hparams["reduction"] == "sum" else 1
        (loss * scale).backward()
        for i, layer in enumerate(getattr(self, "_layers", ())):
            grads = [p.grad.detach().reshape(-1) for p in layer.parameters() if p.grad is not None]
            if grads:
                self.stats.grad(i, torch.cat(grads).norm())
        if self.hparams["grad_clip"] > 0:
            params = [p for p in network.parameters() if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.hparams["grad_clip"])

    def make_optimizer(self, groups, lr, weight_decay):
        return adam(groups, adamw=self.hparams["optimizer"] == "adamw", lr=lr, betas=(0.9, 0.999),
                    weight_decay=weight_decay)

    def make_scheduler(self, optimizer, epochs):
        return make_schedule(self.hparams, optimizer, epochs)

    def describe(self, network):
        """This epoch's :class:`TrainingStats` per layer (then reset), under ``tssl`` in metrics.jsonl."""
        stats = getattr(self, "stats", None)
        if stats is None:
            return {}
        out = stats.summary(self._layer_names)
        stats.reset()
        return {"tssl": out} if out else {}

    def after_step(self, network):
        c = self.hparams["weight_clip"]
        if c <= 0:
            return
        with torch.no_grad():
            for layer in network.spiking_layers():
                for name, p in layer.named_parameters():
                    if name.startswith("neuron."):
                        continue  # leaks are clamped by bip, not here
                    p.clamp_(-c, c)


def register(register):
    register(TSSLBP)


__all__ = ["TSSLBP", "TSSLScan", "tssl_forward", "tssl_backward", "desired_spikes", "psc", "warmup_surrogate"]
