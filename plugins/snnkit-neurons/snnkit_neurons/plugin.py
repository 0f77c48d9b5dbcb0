"""Entry point of snnkit-neurons: every module of the package with a register(register) function is registered."""

import snnkit_neurons
from snnkit_core import hookimpl
from snnkit_core.contract.discover import register_submodules


@hookimpl
def register_neurons(register):
    register_submodules("snnkit_neurons", snnkit_neurons.__path__, register)
