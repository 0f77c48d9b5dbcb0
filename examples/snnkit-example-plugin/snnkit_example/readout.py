"""``readout-delta``: trains only the linear readout, with a hand-written gradient and no autograd at all.

The hidden layers stay as initialised (a fixed random spiking reservoir). With the linear readout
logits = Σ_t (W h[t] + b) over the last hidden layer's output h (T, B, N), cross-entropy L averaged over the
batch, and e = softmax(logits) - onehot(y) (B, K):

    ∂L/∂W = eᵀ (Σ_t h[t]) / B          ∂L/∂b = T · Σ_B e / B

``train_step`` runs the forward under ``torch.no_grad()``, writes these into ``.grad`` and steps the
optimizer: the model of a rule with its own backward (ST-RSBP-like rules do the same with their own solve).
Evaluation is the default ``eval_step`` (forward, ``loss``, ``logits``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snnkit_core import LearningRule, Param
from snnkit_core.contract.errors import IncompatibleError


class ReadoutDelta(LearningRule):
    """Trains the linear readout by its closed-form cross-entropy gradient; no autograd (example plugin)."""

    name = "readout-delta"
    description = "trains only the linear readout, gradient written by hand, forward without autograd (example plugin)"
    readout = "linear"
    params = (Param("lr", 0.01, "learning rate (Adam)"), Param("weight_decay", 0.0, "weight decay"))

    def loss(self, output, target):
        return F.cross_entropy(output.logits, target)

    def setup(self, network):
        if network.readout != "linear":
            raise IncompatibleError("readout-delta trains a linear readout; use readout 'linear' (its default)")

    def param_groups(self, network, groups):
        return [{"params": list(network.output.parameters()), "name": "readout"}]

    def train_step(self, network, batch, optimizer):
        with torch.no_grad():
            out = network(batch.x)
            loss = self.loss(out, batch.y)
            T, B = batch.x.shape[:2]
            e = torch.softmax(out.logits, 1) - F.one_hot(batch.y, out.logits.shape[1]).to(out.logits)
            optimizer.zero_grad(set_to_none=True)
            network.output.weight.grad = e.t() @ out.hidden[-1].y.sum(0) / B
            network.output.bias.grad = T * e.sum(0) / B
            optimizer.step()
            network.after_step()
        return loss, out.logits
