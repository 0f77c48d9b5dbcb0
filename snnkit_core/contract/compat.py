"""Which rule can train which neuron with which connectivity: decided from declared capabilities only.

A rule declares what it needs in ``LearningRule.compatibility`` (:class:`~snnkit_core.contract.interfaces.Compatibility`):
neuron class flags (``has_psc``, ``has_leak``, ``has_surrogate``), accepted recurrence structures of hidden and
output layers (``Connectivity.recurrence`` / ``output_recurrence``), and, for a rule tied to named components,
names. Every refusal is a :class:`Reason` (which component, which capability, the sentence shown). Assembly
(:func:`check_compatible`) and ``snnkit info`` (:func:`rules_for`, :func:`accepted_by`) both use this module.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

from snnkit_core.contract.errors import IncompatibleError


@frozen
class Reason:
    """One reason a rule cannot train a component: ``component`` is "neuron" or "connectivity", ``name`` the
    component's registered name, ``need`` the missing capability (e.g. ``has_psc``, ``recurrence``), ``text``
    the sentence shown to the user."""

    rule: str
    component: str
    name: str
    need: str
    text: str

    def __str__(self) -> str:
        return self.text


def declared_reasons(rule, neuron_cls, conn_cls) -> list[Reason]:
    """Reasons from ``rule.compatibility`` alone; ``neuron_cls`` or ``conn_cls`` None skips that side."""
    c, out = rule.compatibility, []
    if neuron_cls is not None:
        nname = neuron_cls.name
        if c.neurons is not None and nname not in c.neurons:
            out.append(Reason(rule.name, "neuron", nname, "name",
                              f"rule {rule.name!r} supports neurons {sorted(c.neurons)}, not {nname!r}"))
        for cap in c.neuron_caps:
            if not getattr(neuron_cls, cap, False):
                out.append(Reason(rule.name, "neuron", nname, cap,
                                  f"rule {rule.name!r} needs a neuron with {cap}; {nname!r} lacks it"))
    if conn_cls is not None:
        cname = conn_cls.name
        if c.connectivity is not None and cname not in c.connectivity:
            out.append(Reason(rule.name, "connectivity", cname, "name",
                              f"rule {rule.name!r} supports connectivity {sorted(c.connectivity)}, not {cname!r}"))
        for attr, allowed in (("recurrence", c.recurrence), ("output_recurrence", c.output_recurrence)):
            have = getattr(conn_cls, attr, "none")
            if allowed is not None and have not in allowed:
                where = "hidden-layer" if attr == "recurrence" else "output-layer"
                out.append(Reason(rule.name, "connectivity", cname, attr,
                                  f"rule {rule.name!r} accepts a {where} recurrence of {sorted(allowed)}; connectivity "
                                  f"{cname!r} has {have!r}"))
    return out


def rules_for(registry, kind: str, cls) -> list[str]:
    """The installed gradient and add-on rules that accept component ``cls`` of ``kind`` ("neuron" or "connectivity")."""
    out = []
    for name in registry.names("rule"):
        rule = registry.get("rule", name)()
        reasons = rule.reasons(cls, None) if kind == "neuron" else rule.reasons(None, cls)
        if not reasons:
            out.append(name)
    return out


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


def accepted_by(registry, rule) -> tuple[list[str], list[str]]:
    """The installed neurons and connectivities ``rule`` accepts, each judged on its own."""
    neurons = [n for n in registry.names("neuron") if not rule.reasons(registry.get("neuron", n), None)]
    conns = [c for c in registry.names("connectivity") if not rule.reasons(None, registry.get("connectivity", c))]
    return neurons, conns


def check_compatible(neuron_cls, conn_cls, rules: Sequence, registry=None) -> None:
    """Fail before training, listing what would work instead."""
    gradient = [r for r in rules if r.role == "gradient"]
    if len(gradient) != 1:
        names = [r.name for r in gradient]
        hint = ""
        if registry is not None:
            hint = " Gradient rules: " + ", ".join(
                n for n in registry.names("rule") if registry.get("rule", n).role == "gradient"
            ) + "."
        raise IncompatibleError(
            f"exactly one gradient rule is needed; got {names or 'none'} "
            f"(add-on rules such as bip compose with one, e.g. --rule tssl-bp --rule bip).{hint}"
        )
    problems = [p for r in rules for p in r.check(neuron_cls, conn_cls)]
    if not problems:
        return
    msg = "incompatible combination: " + "; ".join(problems) + "."
    if registry is not None:
        msg += _alternatives(neuron_cls, conn_cls, rules, registry)
    raise IncompatibleError(msg)


def _alternatives(neuron_cls, conn_cls, rules, registry) -> str:
    msg = ""
    alternatives = []
    for r in rules:
        if not r.check(neuron_cls, conn_cls):
            continue
        neurons = [n for n in registry.names("neuron") if not r.check(registry.get("neuron", n), conn_cls)]
        conns = [c for c in registry.names("connectivity") if not r.check(neuron_cls, registry.get("connectivity", c))]
        alternatives.append(
            f"rule {r.name!r} works with "
            + (f"neurons {neurons}" if neurons else "none of the installed neurons") + f" (with --conn {conn_cls.name}) and "
            + (f"connectivity {conns}" if conns else "none of the installed connectivity") + f" (with --neuron {neuron_cls.name})"
        )
    rules_ok = [
        n for n in registry.names("rule")
        if registry.get("rule", n).role == "gradient" and not registry.get("rule", n)().check(neuron_cls, conn_cls)
    ]
    if alternatives:
        msg += " " + "; ".join(alternatives) + "."
    msg += f" Gradient rules that accept --neuron {neuron_cls.name} --conn {conn_cls.name}: {rules_ok or 'none'}."
    return msg
