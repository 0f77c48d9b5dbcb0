"""``input-noise``: the NRR-SNN authors' noise, an add-on that perturbs every hidden layer's input.

When it is on, each hidden layer's input x (the previous layer's output, or the network input for the first
layer; T, B, C) is replaced, at every time step and per element, by ``x * (1 + p * sgn(u - 0.5))`` with u uniform
in [0, 1): a multiplicative +-p perturbation, in training and in evaluation alike. The NRR-SNN paper's robust
ratio is Acc(trained without noise, tested with it) / Acc(trained with it, tested with it): the second is a run
with this add-on, the first ``snnkit eval RUN --noise p`` of a run trained without it (docs/rules/reward-prop.md).
"""

from __future__ import annotations

import torch

from snnkit_core import LearningRule, Param
from snnkit_core.contract.errors import ConfigError


def perturb(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x * (1 + p * sgn(u - 0.5))``, u ~ U[0, 1) per element (drawn on ``x``'s device; u = 0.5 exactly gives
    sgn 0, probability 0 in floating point)."""
    if p == 0:
        return x
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x * (1 + p * torch.sign(u - 0.5))


def attach(network, p: float, generator: torch.Generator | None = None) -> list:
    """Perturb the input of every hidden layer of ``network`` from now on (a forward pre-hook on its feedforward
    weights); returns the hook handles (``handle.remove()`` turns it off)."""
    return [layer.ff.register_forward_pre_hook(lambda _m, args: (perturb(args[0], p, generator), *args[1:]))
            for layer in network.layers]


class InputNoise(LearningRule):
    """The NRR-SNN authors' multiplicative input noise on every hidden layer, in training and evaluation."""

    name = "input-noise"
    description = "multiplicative +-p noise on every hidden layer's input (the NRR-SNN robustness experiments)"
    role = "addon"
    params = (Param("p", 0.1, "noise proportion: each input element is scaled by 1 + p or 1 - p at random"),)

    def setup(self, network) -> None:
        if not 0.0 <= self.hparams["p"] <= 1.0:
            raise ConfigError(f"rule.input-noise.p must be in [0, 1]; got {self.hparams['p']}")
        self.handles = attach(network, self.hparams["p"])


def register(register):
    register(InputNoise)
