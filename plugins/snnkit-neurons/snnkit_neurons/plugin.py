"""Entry point of snnkit-neurons: every module of the package with a register(register) function is registered,
and the faster scans of :mod:`snnkit_neurons.scans` as implementations."""

import snnkit_neurons
from snnkit_core import hookimpl
from snnkit_core.contract.discover import register_submodules


@hookimpl
def register_neurons(register):
    register_submodules("snnkit_neurons", snnkit_neurons.__path__, register)


@hookimpl
def register_implementations(register):
    from snnkit_neurons import scans  # imports torch: only when the components are collected, not at startup

    scans.register_all(register)
