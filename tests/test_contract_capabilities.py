"""Capability names in a rule's Compatibility are validated when the rule registers: a typo is refused with the
plugin's name and close matches, instead of silently refusing every neuron; the rule-facing members are declared."""

from __future__ import annotations

import pytest
import torch

from snnkit_core import Compatibility, LearningRule, hookimpl
from snnkit_core.contract.compat import neuron_capabilities, undeclared
from snnkit_core.contract.errors import RegistrationError
from snnkit_core.contract.neuron import Neuron


def _rule(**compat):
    class Typo(LearningRule):
        name = "typo-rule"
        description = "a rule whose compatibility has a typo"
        compatibility = Compatibility(**compat)

    return Typo


class _Plugin:
    def __init__(self, rule):
        self.rule = rule

    @hookimpl
    def register_rules(self, register):
        register(self.rule)


def test_a_misspelt_capability_is_refused_at_registration_naming_the_plugin_and_close_matches(fresh_plugins):
    with pytest.raises(RegistrationError) as exc:
        fresh_plugins.register_plugin(_Plugin(_rule(neuron_caps=("has_lek",))), name="typo-plugin")
    msg = str(exc.value)
    assert "plugin 'typo-plugin'" in msg and "'typo-rule'" in msg and "'has_lek'" in msg
    assert "Did you mean 'has_leak'" in msg
    assert "typo-rule" not in fresh_plugins.get_registry().names("rule")


def test_a_misspelt_recurrence_structure_is_refused(fresh_plugins):
    with pytest.raises(RegistrationError, match="'diagnal', which is not a recurrence structure"):
        fresh_plugins.register_plugin(_Plugin(_rule(recurrence=frozenset({"diagnal"}))), name="typo-plugin")


_TYPO_PLUGIN = """
from snnkit_core import Compatibility, LearningRule, hookimpl


class Typo(LearningRule):
    name = "typo-rule"
    description = "needs a capability no neuron declares"
    compatibility = Compatibility(neuron_caps=("has_psk",))


@hookimpl
def register_rules(register):
    register(Typo)
"""


def test_an_installed_plugin_with_a_typo_is_broken_and_the_others_load(fresh_plugins, tmp_path, monkeypatch):
    from .test_plugins import _install_distribution

    _install_distribution(tmp_path, monkeypatch, "typo-dist", "typo_dist", _TYPO_PLUGIN)
    fresh_plugins.reset_for_tests()
    info = {p.name: p for p in fresh_plugins.plugin_infos()}["typo-dist"]
    assert info.error.startswith("registration refused:") and "Did you mean 'has_psc'" in info.error
    assert "bptt" in fresh_plugins.get_registry().names("rule")
    assert "typo-rule" not in fresh_plugins.get_registry().names("rule")


def test_declared_capabilities_are_accepted_and_listed():
    caps = neuron_capabilities(Neuron)
    assert {"has_psc", "has_leak", "has_surrogate", "has_spike_hook", "has_rsbp_dynamics", "sums_inputs"} <= set(caps)
    assert undeclared(Compatibility(neuron_caps=("has_psc", "has_leak"), recurrence=frozenset({"none", "dense"})),
                      Neuron) == []


def test_the_first_party_rules_name_only_declared_capabilities(fresh_plugins):
    reg = fresh_plugins.get_registry()
    assert {"bptt", "tssl-bp", "bip", "st-rsbp", "reward-prop"} <= set(reg.names("rule"))
    for name in reg.names("rule"):
        assert undeclared(reg.get("rule", name).compatibility, Neuron) == []


def test_st_rsbp_accepts_neurons_by_capability_not_by_name(fresh_plugins):
    reg = fresh_plugins.get_registry()
    rule = reg.get("rule", "st-rsbp")()
    assert rule.compatibility.neurons is None
    assert [n for n in reg.names("neuron") if not rule.reasons(reg.get("neuron", n), None)] == ["lif-rsbp"]
    reasons = rule.reasons(reg.get("neuron", "lif"), None)
    assert [r.need for r in reasons] == ["has_rsbp_dynamics"]


def test_rule_defaults_for_reduction_lr_and_evaluation(fresh_plugins):
    reg = fresh_plugins.get_registry()
    assert reg.get("rule", "bptt")().grad_reduction() == "mean"
    assert reg.get("rule", "tssl-bp")().grad_reduction() == "sum"
    assert reg.get("rule", "tssl-bp")(reduction="mean").grad_reduction() == "mean"
    assert reg.get("rule", "st-rsbp")().grad_reduction() == "sum"
    assert reg.get("rule", "tssl-bp")().default_lr() == 2e-3
    assert reg.get("rule", "tssl-bp")().default_weight_decay() == 0.01
    assert _rule()().default_lr() == 1e-3 and _rule()().default_weight_decay() == 0.0


def test_eval_step_does_not_update(fresh_plugins):
    from snnkit_core.contract.rule import Batch
    from snnkit_core.engine.assembly import assemble

    reg = fresh_plugins.get_registry()
    rule = reg.get("rule", "bptt")()
    torch.manual_seed(0)
    net = assemble(reg.get("neuron", "lif"), reg.get("connectivity", "ff")(), [rule], input_size=3, num_classes=2,
                   hidden=(4,))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batch = Batch(torch.rand(6, 2, 3), torch.tensor([0, 1]), torch.arange(2))
    with torch.no_grad():
        loss, logits = rule.eval_step(net, batch)
    assert loss.ndim == 0 and logits.shape == (2, 2)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("neuron, conn, rule", [("lif", "self", "tssl-bp"), ("lif-rsbp", "dense", "st-rsbp"),
                                                ("nrr", "dense", "reward-prop")])
def test_rules_set_no_attributes_on_the_networks_objects(fresh_plugins, neuron, conn, rule):
    """A rule keeps its per-layer state itself (by ``layer.index``): the assembled layers carry exactly the
    attributes they carry under bptt."""
    from snnkit_core.engine.assembly import assemble

    reg = fresh_plugins.get_registry()

    def layers(rule_name):
        r = reg.get("rule", rule_name)()
        net = assemble(reg.get("neuron", neuron), reg.get("connectivity", conn)(), [r], input_size=3, num_classes=2,
                       hidden=(4, 4), readout=reg.get("rule", rule).readout)
        return [sorted(vars(layer)) for layer in net.spiking_layers()], [layer.index for layer in net.spiking_layers()]

    assert layers(rule) == layers("bptt")
    assert layers(rule)[1] == ([0, 1, 2] if reg.get("rule", rule).readout == "spiking" else [0, 1])
