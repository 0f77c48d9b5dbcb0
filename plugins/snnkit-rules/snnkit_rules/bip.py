"""``bip``: backpropagated intrinsic plasticity (ScSr-SNN, Zhang & Li, AAAI 2021; docs/rules/bip.md).

An add-on rule: it trains each hidden neuron's leak θ_i = 1 - 1/τm,i with the same global loss and the same
optimizer as the weights. With the LIF update

    u_i[t] = θ_i·ũ_i[t-1] + I_i[t]          (ũ: membrane after the hard reset)

the gradient is (ScSr eq. 21, with the post-reset potential)

    ∂L/∂θ_i = Σ_t δ_i[t]·ũ_i[t-1],          δ_i[t] = ∂L/∂u_i[t]

where δ comes from the gradient rule: ``tssl-bp``'s reverse-time pass computes this sum itself (TSSLScan's
leak gradient), ``bptt`` gets it from autograd through the scan. The intra-neuron terms of TSSL-BP use the
neuron's own θ_i.

After every optimizer step θ is clamped to [theta_min, theta_max] (default [0.5, 0.998], i.e. τm in
[2, 512] steps, the spec's recommendation). The leak gets its own optimizer group with the weights' learning
rate and no weight decay (``weight_decay`` = 0). Every epoch, ``describe`` records mean/std/min/max of θ and of τm = 1/(1-θ) per
layer under the metrics key ``bip``, plus τm's deciles over the layer's neurons (``tau_m_deciles``, 11 values).

Scope [paper silent]: hidden layers only by default (``output_layer = false``): the paper describes BIP for
the self-recurrent hidden layers, and the output layer keeps Table 1's τm. ``output_layer = true`` also
trains the output layer's leak (spiking readouts only).
"""

from __future__ import annotations

import torch

from snnkit_core import Compatibility, LearningRule, Param
from snnkit_core.contract.errors import ConfigError, IncompatibleError


class BIP(LearningRule):
    """Trains the per-neuron leak θ = 1 - 1/τm by backpropagation; composes with one gradient rule."""

    name = "bip"
    description = "backpropagated intrinsic plasticity: trains each neuron's leak 1-1/τm (add-on to tssl-bp or bptt)"
    role = "addon"
    compatibility = Compatibility(neuron_caps=("has_leak",))
    params = (
        Param("theta_min", 0.5, "lower clamp of the leak θ (τm = 2 steps)"),
        Param("theta_max", 0.998, "upper clamp of the leak θ (τm = 500 steps; the spec's [2, 512] rounded to θ)"),
        Param("output_layer", False, "also train the spiking output layer's leak"),
        Param("weight_decay", 0.0, "weight decay on the leak"),
    )

    def __init__(self, **params):
        super().__init__(**params)
        lo, hi = self.hparams["theta_min"], self.hparams["theta_max"]
        if not 0 <= lo < hi < 1:
            raise ConfigError(f"bip needs 0 <= theta_min < theta_max < 1; got theta_min={lo}, theta_max={hi}")

    def layers(self, network):
        layers = list(network.layers)
        if self.hparams["output_layer"] and network.readout == "spiking":
            layers.append(network.output)
        return layers

    def setup(self, network):
        for i, layer in enumerate(self.layers(network)):
            if not layer.neuron.has_leak or layer.neuron.leak is None:
                raise IncompatibleError(f"bip needs a neuron with a per-neuron leak; layer {i} has {type(layer.neuron).__name__}")
            layer.neuron.make_leak_trainable()
        self.clamp(network)

    def leaks(self, network) -> list[torch.nn.Parameter]:
        return [layer.neuron.leak for layer in self.layers(network)]

    def param_groups(self, network, groups):
        ids = {id(p) for p in self.leaks(network)}
        out = []
        for g in groups:
            rest = [p for p in g["params"] if id(p) not in ids]
            if rest:
                out.append({**g, "params": rest})
        group = {"params": self.leaks(network), "name": "bip-leak", "weight_decay": self.hparams["weight_decay"]}
        out.append(group)
        return out

    def clamp(self, network):
        with torch.no_grad():
            for p in self.leaks(network):
                p.clamp_(self.hparams["theta_min"], self.hparams["theta_max"])

    def after_step(self, network):
        self.clamp(network)

    def describe(self, network):
        info = {}
        names = [f"layer{i}" for i in range(len(network.layers))] + (["output"] if self.hparams["output_layer"] and network.readout == "spiking" else [])
        for name, p in zip(names, self.leaks(network)):
            th = p.detach().double().cpu()
            tau = 1 / (1 - th)
            info[name] = {
                "theta_mean": float(th.mean()), "theta_std": float(th.std()) if th.numel() > 1 else 0.0,
                "theta_min": float(th.min()), "theta_max": float(th.max()),
                "tau_m_mean": float(tau.mean()), "tau_m_std": float(tau.std()) if tau.numel() > 1 else 0.0,
                "tau_m_min": float(tau.min()), "tau_m_max": float(tau.max()),
                # the distribution over neurons, for `snnkit plot`: τm at the 0, 10, ..., 100 % quantiles
                "tau_m_deciles": [float(q) for q in torch.quantile(tau, torch.linspace(0, 1, 11, dtype=tau.dtype))],
            }
        return {"bip": info}


def register(register):
    register(BIP)
