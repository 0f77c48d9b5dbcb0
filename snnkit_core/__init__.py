"""snnkit's minimal core: interfaces, plugin manager, registry, assembly and the training loop.

Imports torch, numpy, pluggy and attrs only; never click, rich or soundfile.
"""

from .errors import SnnkitError
from .hookspecs import hookimpl
from .interfaces import ArrayData, Batch, Compatibility, Connectivity, Dataset, LearningRule, Neuron, Recurrence
from .params import Param

__version__ = "0.1.0"

__all__ = [
    "ArrayData",
    "Batch",
    "Compatibility",
    "Connectivity",
    "Dataset",
    "LearningRule",
    "Neuron",
    "Param",
    "Recurrence",
    "SnnkitError",
    "hookimpl",
]
