"""Entry point of snnkit-example-plugin (``[project.entry-points.snnkit]`` in pyproject.toml).

snnkit imports this module and calls the hooks below once, each with a ``register`` callback.
"""

from snnkit_core import hookimpl

from .bands import PoissonBands
from .local import Local
from .neuron import IF
from .rate import RateReg
from .readout import ReadoutDelta


@hookimpl
def register_neurons(register):
    register(IF)


@hookimpl
def register_datasets(register):
    register(PoissonBands)


@hookimpl
def register_connectivity(register):
    register(Local)


@hookimpl
def register_rules(register):
    register(ReadoutDelta)
    register(RateReg)
