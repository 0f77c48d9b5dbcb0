"""Entry point of snnkit-example-plugin (``[project.entry-points.snnkit]`` in pyproject.toml).

snnkit imports this module and calls the hooks below once, each with a ``register`` callback.
"""

from snnkit_core import hookimpl

from .bands import PoissonBands
from .neuron import IF


@hookimpl
def register_neurons(register):
    register(IF)


@hookimpl
def register_datasets(register):
    register(PoissonBands)
