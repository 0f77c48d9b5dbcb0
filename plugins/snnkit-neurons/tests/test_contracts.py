"""The neuron contract of snnkit.testing, for each first-party neuron."""

from snnkit.testing import NeuronContract
from snnkit_neurons.lif import LIF
from snnkit_neurons.lif_soft import LIFSoft


class TestLIFContract(NeuronContract):
    neuron_cls = LIF
    params = {"tau_m": 4.0, "tau_s": 2.0}
    scale = 3.0


class TestLIFSoftContract(NeuronContract):
    neuron_cls = LIFSoft
