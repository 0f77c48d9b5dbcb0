"""snnkit's contract tests (snnkit.testing) for each component of this plugin."""

from snnkit_example.bands import PoissonBands
from snnkit_example.local import Local
from snnkit_example.neuron import IF
from snnkit_example.rate import RateReg
from snnkit_example.readout import ReadoutDelta

from snnkit.testing import ConnectivityContract, DatasetContract, NeuronContract, RuleContract


class TestIF(NeuronContract):
    neuron_cls = IF


class TestLocal(ConnectivityContract):
    conn_cls = Local
    neuron_cls = IF


class TestReadoutDelta(RuleContract):
    rule_cls = ReadoutDelta
    neuron_cls = IF


class TestRateReg(RuleContract):
    rule_cls = RateReg
    neuron_cls = IF
    conn_cls = Local


class TestPoissonBands(DatasetContract):
    dataset_cls = PoissonBands
    params = {"examples": 32}
