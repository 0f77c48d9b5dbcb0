"""The whole plugin contract of snnkit: seven hooks.

A plugin is a module (or object) listed under the ``snnkit`` entry-point group. It implements any of the
hooks below with ``@snnkit_core.hookimpl``. Each ``register_*`` hook receives a ``register`` callback; call
it once per component class. The registry remembers which plugin registered what and rejects invalid or
duplicate registrations immediately, naming the plugin.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("snnkit")
hookimpl = pluggy.HookimplMarker("snnkit")


@hookspec
def register_neurons(register):
    """Register neuron models: ``register(cls)`` with ``cls`` a subclass of :class:`snnkit_core.Neuron`.

    :param register: callback taking the class; its ``name`` attribute is the name users type.
    """


@hookspec
def register_connectivity(register):
    """Register connectivity patterns: ``register(cls)``, ``cls`` a subclass of :class:`snnkit_core.Connectivity`."""


@hookspec
def register_rules(register):
    """Register learning rules: ``register(cls)`` with ``cls`` a subclass of :class:`snnkit_core.LearningRule`."""


@hookspec
def register_datasets(register):
    """Register datasets: ``register(cls)`` with ``cls`` a subclass of :class:`snnkit_core.Dataset`."""


@hookspec
def register_commands(cli):
    """Add commands to the ``snnkit`` CLI.

    :param cli: the root :class:`click.Group`; call ``cli.command()`` or ``cli.add_command(...)`` on it.
    """


@hookspec
def register_implementations(register):
    """Register faster exact scans: ``register(impl)`` with ``impl`` an
    :class:`snnkit_core.contract.implementations.Implementation`, keyed by the neuron name, the kind of
    recurrence and the device type it accelerates. The network chooses among them once, when it is planned.

    :param register: callback taking the implementation.
    """


@hookspec
def register_loggers(register):
    """Register experiment trackers for ``snnkit train --logger NAME``: ``register(cls)`` with ``cls`` a subclass
    of ``snnkit_cli.loggers.Logger`` (see docs/plugins.md)."""
