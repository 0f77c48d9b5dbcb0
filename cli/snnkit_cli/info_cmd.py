"""``snnkit info NAME``: parse -> snnkit_core.contract.registry / compat -> render."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from .errors import expected_errors
from .render import console


@click.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(["neuron", "connectivity", "rule", "dataset"]), help="When NAME is "
                                                                                               "ambiguous.")
@expected_errors
def info(name, kind):
    """What a component is: description, parameters (defaults, units) and compatibility."""
    import inspect

    from snnkit_core.contract.errors import UnknownComponentError
    from snnkit_core.contract.plugins import get_registry

    reg = get_registry()
    found = [c for c in reg.find(name) if kind is None or c.kind == kind]
    if not found:
        if kind:
            others = reg.find(name)
            if others:
                raise UnknownComponentError(kind, name, reg.names(kind), note=f"that name is a {others[0].kind}, not a "
                                                                              f"{kind} (snnkit info {name})")
            reg.component(kind, name)  # raises, naming a broken plugin that would provide it
        notes = [
            reg.unavailable(k, name) for k in ("neuron", "connectivity", "rule", "dataset") if reg.unavailable(k, name)
        ]
        raise UnknownComponentError(
            "component", name, sorted({c.name for c in reg.all()}), note=notes[0] if notes else ""
        )
    for comp in found:
        cls = comp.cls
        console.rule(f"[bold]{comp.kind} {comp.name}[/]  (plugin {comp.plugin})")
        console.print(cls.description or "")
        # the class's own docstring (a module often holds several components); the module's when it has none
        doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "") or inspect.getdoc(sys.modules[cls.__module__]) or ""
        if doc:
            console.print(doc, markup=False, highlight=False)
        if cls.params:
            t = Table(
                title="parameters (--set "
                "{}.KEY=VALUE)".format({"connectivity": "conn", "rule": f"rule.{comp.name}"}.get(comp.kind, comp.kind))
            )
            for col in ("name", "default", "unit", "meaning"):
                t.add_column(col)
            for p in cls.params:
                meaning = p.help + (f" (one of {', '.join(map(str, p.choices))})" if p.choices else "")
                t.add_row(p.name, repr(p.default), p.unit, meaning)
            console.print(t)
        for line in _compat_lines(comp, reg):
            console.print(line)
        if cls.recipe:  # what `snnkit train` fills in where the user chose nothing
            from snnkit.recipes import show

            console.print(f"recipe (filled in where you choose nothing): {show(cls.recipe)}", markup=False,
                          highlight=False, soft_wrap=True)


def _compat_lines(comp, reg) -> list[str]:
    from .compat_report import accepted_by, refusals, rules_for

    cls = comp.cls
    if comp.kind == "rule":
        c = cls.compatibility
        neurons, conns = accepted_by(reg, cls())
        return [
            f"role: {cls.role}; readout: {cls.readout}",
            f"neurons: {', '.join(neurons) or '(none installed)'}"
            + (f" (needs {', '.join(c.neuron_caps)})" if c.neuron_caps else ""),
            f"connectivity: {', '.join(conns) or '(none installed)'}",
        ]
    if comp.kind == "neuron":
        caps = [cap for cap in ("has_psc", "has_surrogate", "has_leak") if getattr(cls, cap, False)]
        return [f"capabilities: {', '.join(caps) or '-'}", f"rules: {', '.join(rules_for(reg, 'neuron', cls)) or '-'}",
                *_refused_lines(refusals(reg, "neuron", cls)), *_implementation_lines(lambda i: i.neuron == comp.name)]
    if comp.kind == "connectivity":
        kinds = _scan_kinds(cls)
        return [f"recurrence: {cls.recurrence}; skip edges: {'yes' if cls.has_skip else 'no'}",
                f"rules: {', '.join(rules_for(reg, 'connectivity', cls)) or '-'}",
                *_refused_lines(refusals(reg, "connectivity", cls)),
                *([f"its recurrence's own scan uses implementations of kind {', '.join(kinds)}:"] if kinds else []),
                *_implementation_lines(lambda i: i.kind in kinds, heading=False)]
    if comp.kind == "dataset":
        return [f"source: {cls.source or '-'}", f"licence: {cls.licence or '-'}", f"splits: {', '.join(cls.splits)}"]
    return []


def _implementation_lines(keep, heading: bool = True) -> list[str]:
    """The registered implementations ``keep`` selects, per neuron, kind and device, in the order a plan tries
    them, and whether each can run here (Triton on the CPU, under its interpreter, is for tests: not listed)."""
    import torch

    from snnkit_core.contract.implementations import registered, unavailable

    rows: dict[str, list[str]] = {}
    for i in registered():
        if keep(i) and not (i.device == "cpu" and i.backend == "triton"):
            why = "no CUDA device" if i.device == "cuda" and not torch.cuda.is_available() else unavailable(i)
            rows.setdefault(f"  {i.neuron}, {i.kind}, {i.device}: ", []).append(
                i.name + ("" if why is None else f" (not here: {why})"))
    lines = ["implementations (faster exact scans; a layer runs the first that can, see docs/performance.md):"] * (
        heading and bool(rows))
    return lines + [key + ", ".join(names) for key, names in rows.items()]


def _scan_kinds(cls) -> tuple[str, ...]:
    """The implementation kinds the connectivity's recurrence scan uses (of a 4-neuron layer with defaults)."""
    try:
        rec = cls().make_recurrence(0, 4)
    except Exception:  # noqa: BLE001 - only for the listing; a connectivity that needs parameters shows none
        return ()
    return tuple(getattr(rec, "kinds", ())) if rec is not None else ()


def _refused_lines(refused: dict) -> list[str]:
    return [f"not {rule}: needs " + ", ".join(r.need for r in reasons) for rule, reasons in refused.items()]


# -------------------------------------------------------------------------------------------- train
