"""snnkit.testing catches broken components (the contract tests can fail) and is a pytest plugin."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from snnkit.testing import ConnectivityContract, NeuronContract
from snnkit_connectivity.asrc import SRC, SkipRecurrence
from snnkit_core import Neuron


class _S(NamedTuple):
    v: torch.Tensor


class BadChunk(Neuron):
    """A neuron whose own scan_chunk drops the reset (so it disagrees with step)."""

    name = "bad-chunk"
    has_surrogate = False

    def initial_state(self, batch, device, dtype):
        return _S(torch.zeros(batch, self.size, device=device, dtype=dtype))

    def step(self, current, state, recurrent=None):
        v = state.v + self.total_input(current, recurrent)
        s = (v > 1).to(v.dtype)
        return s, s, _S(v - s)

    def scan_chunk(self, current, state, recurrent=None):
        v = state.v + torch.cumsum(self.total_input(current, recurrent), 0)
        s = (v > 1).to(v.dtype)
        return s, s, _S(v[-1])


class LeakyWithoutLeak(BadChunk):
    name = "claims-leak"
    has_leak = True

    scan_chunk = Neuron.scan_chunk


def test_the_neuron_contract_fails_a_chunk_scan_that_differs_from_step():
    contract = type("C", (NeuronContract,), {"neuron_cls": BadChunk})()
    with pytest.raises(AssertionError):
        contract.test_scan_chunk_equals_the_reference_scan()


def test_the_neuron_contract_fails_a_declared_capability_without_its_member():
    contract = type("C", (NeuronContract,), {"neuron_cls": LeakyWithoutLeak})()
    with pytest.raises(AssertionError, match="has_leak"):
        contract.test_declared_capabilities_have_their_members()


class OffByOneSRC(SkipRecurrence):
    """Its fast scan uses y[t-k] but its recurrent_input (the oracle's) uses y[t-k+1]."""

    def recurrent_input(self, past):
        return past[self.span - 2] @ self.weight.t()


class BrokenSRC(SRC):
    name = "broken-src"

    def make_recurrence(self, layer, size):
        return OffByOneSRC(size, self.hparams["skip_span"])


def test_the_connectivity_contract_fails_a_fast_scan_that_differs_from_the_reference():
    contract = type("C", (ConnectivityContract,), {"conn_cls": BrokenSRC, "params": {"skip_span": 3}})()
    with pytest.raises(AssertionError):
        contract.test_every_scan_path_equals_the_reference_scan()


def test_the_kit_is_a_pytest_plugin(snnkit_registry):
    """``snnkit_registry`` comes from snnkit.testing through the pytest11 entry point."""
    assert "lif" in snnkit_registry.names("neuron")
