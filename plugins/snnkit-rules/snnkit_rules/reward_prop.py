"""``reward-prop``: NRR-SNN's reward propagation, as the authors' code implements it (DRTP;
docs/rules/reward-prop.md).

Readout ("vote", every step): o[t] = W_o S^L[t] + b_o (``readout = "linear"``), loss
L = mean over (t, b, k) of (o[t] - RP_t)², RP_t = one-hot label at step t (the sample's label repeated at every
step: every dataset here has one label per sample; TIMIT's samples are frame windows labelled by a frame).
Class scores for the prediction: Σ_t o[t].

Gradient replacement. In every hidden layer l, each spike tensor s (for ``nrr`` both channels s_f and s_r) is
passed through a hook that is the identity forward and whose backward DISCARDS the incoming gradient and
returns

    ∂L/∂s[t] := RP_t B^l                    (B^l ∈ R^{K×N_l} fixed, U(±√(6/N_l)), drawn once per layer)
    ∂L/∂s[t] := RP_t B^l - s[t]             with ``minus_h = true`` (paper eq. 7's "- h", h = that spike tensor)

Since the hook sits before the spikes feed anything (output, reset, trace, recurrence, next layer), no
gradient flows between layers or back through a spike; autograd then gives, with r(S) the neuron's reset
factor and 1[·] its rectangular window (``nrr``):

    δ_f[t] = (RP_t B)⊙1[|V_f[t]-θ| < ½] + κ r(S[t])⊙δ_f[t+1],       ∂L/∂W_f = Σ_t δ_f[t] x[t]ᵀ
    ∂L/∂W_r = Σ_t [(RP_t B)⊙1[|V_r[t]-θ| < ½] + κ r(S[t])⊙δ_f[t+1]] S[t-1]ᵀ   (times the sparse mask)

and the readout gets its true MSE gradient. Optimiser: Adam(lr 1e-4, weight decay 1e-5) with
StepLR(step 20 epochs, ×0.8), the authors' defaults. The "- h" term is off by default because neither the
authors' NRRSNN nor BRP-SNN code has it (it is Frenkel's DRTP without it); it is in paper eq. 7 only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from snnkit_core import Compatibility, LearningRule, Param
from snnkit_core.contract.implementations import find
from snnkit_rules.optim import adam
from snnkit_rules.schedules import make_schedule, schedule_params


class RewardProp(LearningRule):
    """Reward propagation (DRTP): hidden spike gradients := one-hot label x fixed random matrix; MSE readout."""

    name = "reward-prop"
    description = ("NRR-SNN reward propagation: hidden spike grads := label one-hot x fixed random B^l, no grad "
                   "between layers, MSE vote readout")
    params = (
        Param("lr", 1e-4, "Adam learning rate (used when --lr is not given)"),
        Param("weight_decay", 1e-5, "Adam weight decay"),
        *schedule_params("step"),  # the authors' StepLR(20, 0.8)
        Param("minus_h", False, "paper eq. 7's '- h': the replaced gradient is RP·B - s (not in the authors' code)"),
    )
    compatibility = Compatibility(neuron_caps=("has_surrogate", "has_spike_hook"))
    # filled in where the user chose nothing (`snnkit train --rule reward-prop`): lr 1e-2 (chosen on espeak-digits'
    # validation split) and, as one group (all or nothing), the authors' deep form: the 39 x 39 fbank-l1 image fed at
    # every step into a spiking conv (4 x 20 x 20), pool, a sparse recurrent layer and a feedforward layer.
    # docs/rules/reward-prop.md#recipe
    recipe = {"neuron": "nrr", "conn": "sparse", "rule.reward-prop.lr": 1e-2,
              "deep image form": {"hidden": (1600, 128, 128), "conn.conv_kernel": 5, "conn.conv_input": "image",
                                  "conn.conv_stride": 2, "conn.recurrent_layers": "1", "dataset.features": "fbank-l1",
                                  "dataset.n_mels": 39, "dataset.steps": 39}}
    readout = "linear"
    owns_scan = True

    def __init__(self, **params):
        super().__init__(**params)
        self.B: list[torch.Tensor] = []  # per hidden layer (K, N_l)
        self._index: dict[int, int] = {}
        self._rp: torch.Tensor | None = None  # (T, B, K) during a training step
        self._replaced: list[torch.Tensor] = []  # Σ <s, g> per spike tensor: their gradient is the replaced one

    def setup(self, network):
        self._hidden = len(network.layers)
        k = network.output.out_features
        self.B = []
        for layer in network.layers:  # kaiming_uniform_(a=0) on (K, N): U(±√(6/N))
            bound = math.sqrt(6.0 / layer.size)
            self.B.append(torch.empty(k, layer.size).uniform_(-bound, bound))

    def layer_scan(self, layer, default):
        index = layer.index
        if index >= self._hidden:  # the spiking output layer: keep its scan
            return None

        def scan(layer, current):
            return self._scan(layer, current, index)

        return scan

    def _scan(self, layer, current, index):
        """The neuron's registered ``reward-prop`` implementation where one takes the layer (the whole layer as one
        node: ``alif``/``nrr`` on the CPU), else the reference scan with hooks."""
        g = None
        if self._rp is not None and torch.is_grad_enabled():
            g = self._rp.to(current.dtype) @ self.B[index].to(current)  # (T, B, N)
        minus_h = bool(self.hparams["minus_h"])
        impl = find(layer.neuron.name, "reward-prop", current.device.type)
        if impl is not None and str(current.dtype).removeprefix("torch.") in impl.dtypes and (
                impl.accepts is None or impl.accepts(layer) is None):
            y, s, z = impl.scan(layer, current, g, minus_h)
            if g is not None:
                self._replaced.append(z)
            return y, s
        return self.reference_scan(layer, current, g, minus_h)

    def reference_scan(self, layer, current, g, minus_h):
        """``neuron.step`` per step, recurrent input from the past outputs, each spike tensor hooked (the oracle)."""
        neuron, rec = layer.neuron, layer.recurrence
        T, Bsz, _ = current.shape
        state = neuron.initial_state(Bsz, current.device, current.dtype)
        g_all = None if g is None else g.unbind(0)  # T x (B, N)
        ys, ss = [], []
        zeros = current.new_zeros(current.shape[1:])
        span = rec.span if rec is not None else 0
        # a masked dense recurrence (``sparse``): W ⊙ M once per sequence instead of once per step
        wt = rec.effective_weight().t() if rec is not None and rec.structure == "dense" and span == 1 else None
        for t, i_t in enumerate(current.unbind(0)):
            r_t = None
            if wt is not None:
                r_t = (ys[t - 1] if t > 0 else zeros) @ wt
            elif rec is not None:
                r_t = rec.recurrent_input([ys[t - j] if t - j >= 0 else zeros for j in range(1, span + 1)])
            hook = None
            if g_all is not None:
                g = g_all[t]

                def hook(s, g=g):
                    # gradient replacement without a Python backward per spike tensor: the spikes go on detached
                    # (no gradient comes back through them) and backward() adds the surrogate term Σ <g, s>
                    # (or Σ <g - s, s>), whose gradient at s is exactly g (g - s)
                    self._replaced.append((s * (g - s.detach() if minus_h else g)).sum())
                    return s.detach()

            y, s, state = neuron.step(i_t, state, r_t, hook=hook)
            ys.append(y)
            ss.append(s)
        return torch.stack(ys), torch.stack(ss)

    def target(self, output, y):
        """RP: the one-hot label at every step, (T, B, K)."""
        T, _, k = output.out.shape
        return F.one_hot(y, k).to(output.out.dtype).unsqueeze(0).expand(T, -1, -1)

    def loss(self, output, target):
        return F.mse_loss(output.out, self.target(output, target))

    def train_step(self, network, batch, optimizer):
        k = network.output.out_features
        self._rp = F.one_hot(batch.y, k).to(batch.x.dtype).unsqueeze(0).expand(batch.x.shape[0], -1, -1)
        self._replaced = []
        try:
            return super().train_step(network, batch, optimizer)
        finally:
            self._rp, self._replaced = None, []

    def backward(self, loss, output, target, network):
        """``loss`` (the readout's MSE) plus Σ <g, s> over every hooked spike tensor: one backward pass."""
        extra = sum(self._replaced)
        (loss + extra).backward()

    def make_optimizer(self, groups, lr, weight_decay):
        return adam(groups, lr=lr, weight_decay=weight_decay)

    def make_scheduler(self, optimizer, epochs):
        return make_schedule(self.hparams, optimizer, epochs)

    def state_dict(self):
        return {"B": [b.clone() for b in self.B]}

    def load_state_dict(self, state):
        if state.get("B"):
            self.B = [b.clone() for b in state["B"]]


def register(register):
    register(RewardProp)
