"""The connectivity contract of snnkit.testing, for each first-party connectivity."""

from snnkit.testing import ConnectivityContract
from snnkit_connectivity.asrc import ASRC, SRC, Dense
from snnkit_connectivity.scsr import FeedForward, SelfRecurrent, Skip, SrSc
from snnkit_neurons.lif import LIF
from snnkit_neurons.lif_soft import LIFSoft


class TestFeedForwardContract(ConnectivityContract):
    conn_cls = FeedForward


class TestSelfContract(ConnectivityContract):
    conn_cls = SelfRecurrent


class TestSkipContract(ConnectivityContract):
    conn_cls = Skip


class TestSrScContract(ConnectivityContract):
    conn_cls = SrSc
    neuron_cls = LIF


class TestDenseContract(ConnectivityContract):
    conn_cls = Dense
    neuron_cls = LIFSoft


class TestSRCContract(ConnectivityContract):
    conn_cls = SRC
    params = {"skip_span": 3}
    neuron_cls = LIFSoft


class TestASRCContract(ConnectivityContract):
    conn_cls = ASRC
    params = {"max_span": 4}
