"""A fake in-process plugin used by the tests: one neuron, one rule with restrictions, one dataset."""

from __future__ import annotations

from typing import NamedTuple

import torch

from snnkit_core import ArrayData, Compatibility, Dataset, LearningRule, Neuron, Param, hookimpl


class _S(NamedTuple):
    v: torch.Tensor


class ToyNeuron(Neuron):
    """Integrate-and-fire without leak (fake plugin)."""

    name = "toy-neuron"
    description = "fake neuron for tests"
    params = (Param("v_th", 0.5, "threshold"),)
    has_surrogate = False

    def initial_state(self, batch, device, dtype):
        return _S(torch.zeros(batch, self.size, device=device, dtype=dtype))

    def step(self, current, state):
        v = state.v + current
        s = (v > self.hparams["v_th"]).to(v.dtype)
        return s, s, _S(v * (1 - s))


class PickyRule(LearningRule):
    """Accepts only toy-neuron with ff (fake plugin)."""

    name = "picky"
    description = "fake rule for tests"
    compatibility = Compatibility(neurons=frozenset({"toy-neuron"}), connectivity=frozenset({"ff"}))


class NaNRule(LearningRule):
    """Returns a NaN loss (fake plugin)."""

    name = "nan-rule"
    readout = "linear"

    def loss(self, output, target):
        return output.logits.sum() * float("nan")


class RisingLossRule(LearningRule):
    """Cross-entropy plus 10 x the epoch: a training loss that rises every epoch whatever the weights do (fake
    plugin, for the training-health warnings)."""

    name = "rising-loss"
    readout = "linear"

    def __init__(self, **params):
        super().__init__(**params)
        self.epoch = 0

    def loss(self, output, target):
        return torch.nn.functional.cross_entropy(output.logits, target) + 10.0 * self.epoch

    def on_epoch_end(self, network, epoch):
        self.epoch = epoch + 1


class TinyDataset(Dataset):
    """Two separable classes, 8 channels, 10 steps (fake plugin)."""

    name = "tiny"
    description = "fake dataset for tests"
    params = (Param("n", 64, "examples per split"),)

    @property
    def num_classes(self):
        return 2

    @property
    def input_size(self):
        return 8

    def load(self, split):
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        n = self.hparams["n"]
        y = torch.randint(0, 2, (n,), generator=g)
        x = torch.rand(n, 10, 8, generator=g) * 0.2
        x[y == 1, :, :4] += 1.0
        x[y == 0, :, 4:] += 1.0
        return ArrayData(x, y)


class FakePlugin:
    @hookimpl
    def register_neurons(self, register):
        register(ToyNeuron)

    @hookimpl
    def register_rules(self, register):
        register(PickyRule)
        register(NaNRule)
        register(RisingLossRule)

    @hookimpl
    def register_datasets(self, register):
        register(TinyDataset)
