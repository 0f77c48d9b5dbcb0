"""``rate-reg``: surrogate-gradient BPTT with a firing-rate regulariser, written only against the documented
contract (spike hook, layer index, recurrent input, evaluation step).

Loss per batch, with the linear readout's logits (B, K), the hidden spikes s_l (T, B, N_l) of hidden layer l
(0-based, ``layer.index``), r_l = mean over (T, B, N_l) of s_l and the target rate ρ (``target_rate``):

    L = CE(logits, y) + λ Σ_l (r_l - ρ)² / (l + 1)        (λ = ``strength``; deeper layers weigh less)

The hidden layers run the neuron's ``step`` with ``hook=`` (``has_spike_hook``): the hook sees each step's
spikes (B, N), keeps them for the penalty and returns them unchanged, so the surrogate gradient flows through
both terms. Evaluation (``eval_step``) reports the cross-entropy alone, the number compared across runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snnkit_core import Compatibility, LearningRule, Param
from snnkit_core.contract.errors import IncompatibleError


class RateReg(LearningRule):
    """Surrogate BPTT with a per-layer firing-rate penalty collected through the spike hook (example plugin)."""

    name = "rate-reg"
    description = ("surrogate BPTT + firing-rate penalty per hidden layer, spikes seen through the spike hook "
                   "(example plugin)")
    readout = "linear"
    compatibility = Compatibility(neuron_caps=("has_surrogate", "has_spike_hook"),
                                  recurrence=frozenset({"none", "dense"}))
    params = (Param("lr", 0.01, "learning rate (Adam)"),
              Param("target_rate", 0.1, "firing rate ρ each hidden layer is pulled towards", unit="spikes/step"),
              Param("strength", 1.0, "λ: weight of the rate penalty"))

    def setup(self, network):
        if network.readout != "linear":
            raise IncompatibleError("rate-reg trains a linear readout; use readout 'linear' (its default)")
        for layer in network.layers:
            if layer.recurrence is not None and layer.recurrence.span != 1:
                raise IncompatibleError(f"rate-reg feeds back y[t-1] only; hidden layer {layer.index}'s recurrence "
                                        f"has span {layer.recurrence.span}")
        self._hidden = len(network.layers)
        self._spikes: dict[int, list[torch.Tensor]] = {}

    def layer_scan(self, layer, default):
        if layer.index >= self._hidden:  # the output layer (a linear readout has none): keep its scan
            return None
        index = layer.index

        def hook(s):
            self._spikes.setdefault(index, []).append(s)
            return s

        def scan(layer, current):
            neuron, rec = layer.neuron, layer.recurrence
            state = neuron.initial_state(current.shape[1], current.device, current.dtype)
            y = current.new_zeros(current.shape[1:])
            ys, ss = [], []
            for i_t in current.unbind(0):
                r = rec.recurrent_input([y]) if rec is not None else None
                y, s, state = neuron.step(i_t, state, r, hook=hook)
                ys.append(y)
                ss.append(s)
            return torch.stack(ys), torch.stack(ss)

        return scan

    def penalty(self) -> torch.Tensor | float:
        """λ Σ_l (r_l - ρ)² / (l + 1) over the spikes the hook kept since the last call (then forgotten)."""
        hp, total = self.hparams, 0.0
        for index, steps in sorted(self._spikes.items()):
            rate = torch.stack(steps).mean()
            total = total + hp["strength"] * (rate - hp["target_rate"]) ** 2 / (index + 1)
        self._spikes = {}
        return total

    def loss(self, output, target):
        return F.cross_entropy(output.logits, target) + self.penalty()

    def eval_step(self, network, batch):
        out = network(batch.x)
        self._spikes = {}
        return F.cross_entropy(out.logits, batch.y).detach(), out.logits.detach()


def register(register):
    register(RateReg)
