"""Entry point of snnkit-connectivity: every module of the package with a register(register) function is registered."""

import snnkit_connectivity
from snnkit_core import hookimpl
from snnkit_core.contract.discover import register_submodules


@hookimpl
def register_connectivity(register):
    register_submodules("snnkit_connectivity", snnkit_connectivity.__path__, register)
