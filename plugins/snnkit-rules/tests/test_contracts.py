"""The rule contract of snnkit.testing, for each first-party rule."""

from snnkit.testing import RuleContract
from snnkit_connectivity.scsr import SrSc
from snnkit_neurons.lif import LIF
from snnkit_neurons.lif_soft import LIFSoft
from snnkit_rules.bip import BIP
from snnkit_rules.bptt import BPTT
from snnkit_rules.tssl_bp import TSSLBP


class TestBPTTContract(RuleContract):
    rule_cls = BPTT
    neuron_cls = LIFSoft
    conn_cls = SrSc


class TestTSSLBPContract(RuleContract):
    rule_cls = TSSLBP
    neuron_cls = LIF
    conn_cls = SrSc
    weight_scale = 5.0


class TestBIPContract(RuleContract):
    rule_cls = BIP
    neuron_cls = LIF
    gradient_cls = TSSLBP
    weight_scale = 5.0
