"""``bptt``: surrogate-gradient backpropagation through time.

Autograd runs through the whole scan; at the threshold the Heaviside derivative is replaced by a surrogate
(``surrogate`` = sigmoid | triangle | fast-sigmoid | atan | rectangle, ``surrogate_width`` in units of
membrane potential; ``auto`` takes the neuron's own default). The loss is cross-entropy on the logits
``Σ_t y_out[t]`` (spiking readout: the output layer's summed PSC/spikes; linear readout: the summed linear
read-out of the last hidden layer, ASRC's form).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snnkit_core import Compatibility, LearningRule, Param
from snnkit_core.contract.surrogate import KINDS
from snnkit_rules.optim import adam
from snnkit_rules.schedules import make_schedule, schedule_params


class BPTT(LearningRule):
    """Surrogate-gradient BPTT with cross-entropy on time-summed output."""

    name = "bptt"
    description = "surrogate-gradient BPTT, cross-entropy on the time-summed output (any neuron, any connectivity)"
    params = (
        Param("lr", 1e-3, "Adam learning rate (used when --lr is not given)"),
        Param("weight_decay", 0.0, "weight decay"),
        Param("surrogate", "auto", "surrogate derivative", choices=("auto", *KINDS)),
        Param("surrogate_width", 0.0, "surrogate width (0: the neuron's default)"),
        Param("grad_clip", 0.0, "clip the global gradient norm to this value (0: off)"),
        Param("optimizer", "adam", "optimizer", choices=("adam", "adamw")),
        *schedule_params("none"),
    )
    compatibility = Compatibility(neuron_caps=("has_surrogate",))
    readout = "linear"  # CE on a summed spiking readout saturates; see docs/rules/bptt.md

    def setup(self, network):
        kind, width = self.hparams["surrogate"], self.hparams["surrogate_width"]
        for layer in [*network.spiking_layers()]:
            n = layer.neuron
            dk, dw = n.default_surrogate
            n.set_surrogate(dk if kind == "auto" else kind, width or dw)

    def loss(self, output, target):
        return F.cross_entropy(output.logits, target)

    def backward(self, loss, output, target, network):
        loss.backward()
        if self.hparams["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(network.parameters(), self.hparams["grad_clip"])

    def make_optimizer(self, groups, lr, weight_decay):
        return adam(groups, adamw=self.hparams["optimizer"] == "adamw", lr=lr, weight_decay=weight_decay)

    def make_scheduler(self, optimizer, epochs):
        return make_schedule(self.hparams, optimizer, epochs)

def register(register):
    register(BPTT)
