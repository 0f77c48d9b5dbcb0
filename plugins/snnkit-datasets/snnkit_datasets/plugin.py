"""Entry point of snnkit-datasets: every module of the package with a register(register) function is registered."""

import snnkit_datasets
from snnkit_core import hookimpl
from snnkit_core.contract.discover import register_submodules


@hookimpl
def register_datasets(register):
    register_submodules("snnkit_datasets", snnkit_datasets.__path__, register)
