"""What ``snnkit info`` says about compatibility: which installed rules accept or refuse a component, and which
components a rule accepts, each judged by the rules' own ``reasons`` (snnkit_core.contract.compat)."""

from __future__ import annotations

from snnkit_core.contract.compat import Reason


def refusals(registry, kind: str, cls) -> dict[str, list[Reason]]:
    """For component ``cls`` of ``kind`` ("neuron" or "connectivity"): each installed rule that refuses it, with
    its reasons (judged on this component alone)."""
    out = {}
    for name in registry.names("rule"):
        rule = registry.get("rule", name)()
        reasons = rule.reasons(cls, None) if kind == "neuron" else rule.reasons(None, cls)
        if reasons:
            out[name] = reasons
    return out


def rules_for(registry, kind: str, cls) -> list[str]:
    """The installed rules that accept component ``cls`` of ``kind`` ("neuron" or "connectivity")."""
    refused = refusals(registry, kind, cls)
    return [n for n in registry.names("rule") if n not in refused]


def accepted_by(registry, rule) -> tuple[list[str], list[str]]:
    """The installed neurons and connectivities ``rule`` accepts, each judged on its own."""
    neurons = [n for n in registry.names("neuron") if not rule.reasons(registry.get("neuron", n), None)]
    conns = [c for c in registry.names("connectivity") if not rule.reasons(None, registry.get("connectivity", c))]
    return neurons, conns
