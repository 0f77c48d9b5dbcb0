"""Which rule can train which neuron with which connectivity, from declared capabilities only: the
names checked when a rule registers (:func:`undeclared`), each refusal a :class:`Reason`, :func:`check_compatible`."""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

from snnkit_core.contract.errors import IncompatibleError, did_you_mean

STRUCTURES = ("none", "diagonal", "dense")  # what Connectivity.recurrence / output_recurrence may declare


@frozen
class Reason:
    """Why a rule cannot train a ``component`` ("neuron"/"connectivity") called ``name``: the missing capability
    ``need`` (``has_psc``, ``recurrence``, ``name``...) and the sentence ``text`` shown to the user."""

    rule: str
    component: str
    name: str
    need: str
    text: str

    def __str__(self) -> str:
        return self.text


def neuron_capabilities(neuron_base: type) -> list[str]:
    """The capability flags ``neuron_base`` (``Neuron``) declares: its boolean class attributes."""
    return sorted(k for k, v in vars(neuron_base).items() if isinstance(v, bool) and not k.startswith("_"))


def undeclared(compatibility, neuron_base: type) -> list[str]:
    """Sentences for each capability or structure ``compatibility`` names that nothing declares (a typo)."""
    caps, out = neuron_capabilities(neuron_base), []
    for cap in compatibility.neuron_caps:
        if cap not in caps:
            out.append(f"Its compatibility names neuron capability {cap!r}, which no Neuron declares."
                       f"{did_you_mean(cap, caps)} Neuron capabilities: {', '.join(caps)}.")
    for field in ("recurrence", "output_recurrence"):
        for value in sorted(getattr(compatibility, field) or ()):
            if value not in STRUCTURES:
                out.append(f"Its compatibility names {field} {value!r}, which is not a recurrence structure "
                           f"({', '.join(STRUCTURES)}).")
    return out


def declared_reasons(rule, neuron_cls, conn_cls) -> list[Reason]:
    """Reasons from ``rule.compatibility`` alone; ``neuron_cls`` or ``conn_cls`` None skips that side."""
    c, out = rule.compatibility, []
    if neuron_cls is not None:
        nname = neuron_cls.name
        if c.neurons is not None and nname not in c.neurons:
            out.append(Reason(rule.name, "neuron", nname, "name",
                              f"rule {rule.name!r} supports neurons {sorted(c.neurons)}, not {nname!r}"))
        out += [Reason(rule.name, "neuron", nname, cap, f"rule {rule.name!r} needs a neuron with {cap}; {nname!r} "
                       "lacks it") for cap in c.neuron_caps if not getattr(neuron_cls, cap, False)]
    if conn_cls is not None:
        cname = conn_cls.name
        if c.connectivity is not None and cname not in c.connectivity:
            out.append(Reason(rule.name, "connectivity", cname, "name",
                              f"rule {rule.name!r} supports connectivity {sorted(c.connectivity)}, not {cname!r}"))
        for attr, allowed in (("recurrence", c.recurrence), ("output_recurrence", c.output_recurrence)):
            have = getattr(conn_cls, attr)
            if allowed is not None and have not in allowed:
                where = "hidden-layer" if attr == "recurrence" else "output-layer"
                out.append(Reason(rule.name, "connectivity", cname, attr, f"rule {rule.name!r} accepts a {where} "
                                  f"recurrence of {sorted(allowed)}; connectivity {cname!r} has {have!r}"))
    return out


def check_compatible(neuron_cls, conn_cls, rules: Sequence, registry=None) -> None:
    """Fail before training, listing what would work instead."""
    gradient = [r.name for r in rules if r.role == "gradient"]
    if len(gradient) != 1:
        hint = "" if registry is None else " Gradient rules: " + ", ".join(
            n for n in registry.names("rule") if registry.get("rule", n).role == "gradient") + "."
        raise IncompatibleError(f"exactly one gradient rule is needed; got {gradient or 'none'} (add-on rules such "
                                f"as bip compose with one, e.g. --rule tssl-bp --rule bip).{hint}")
    problems = [p for r in rules for p in r.check(neuron_cls, conn_cls)]
    if problems:
        more = "" if registry is None else _alternatives(neuron_cls, conn_cls, rules, registry)
        raise IncompatibleError("incompatible combination: " + "; ".join(problems) + "." + more)


def _alternatives(neuron_cls, conn_cls, rules, registry) -> str:
    parts = []
    for r in (r for r in rules if r.check(neuron_cls, conn_cls)):
        ns = [n for n in registry.names("neuron") if not r.check(registry.get("neuron", n), conn_cls)]
        cs = [c for c in registry.names("connectivity") if not r.check(neuron_cls, registry.get("connectivity", c))]
        parts.append(f"rule {r.name!r} works with " + (f"neurons {ns}" if ns else "no neuron")
                     + f" (with --conn {conn_cls.name}) and " + (f"connectivity {cs}" if cs else "no connectivity")
                     + f" (with --neuron {neuron_cls.name})")
    ok = [n for n in registry.names("rule") if registry.get("rule", n).role == "gradient"
          and not registry.get("rule", n)().check(neuron_cls, conn_cls)]
    return (" " + "; ".join(parts) + "." if parts else "") + (
        f" Gradient rules that accept --neuron {neuron_cls.name} --conn {conn_cls.name}: {ok or 'none'}.")
