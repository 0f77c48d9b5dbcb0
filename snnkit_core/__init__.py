"""snnkit's minimal core: interfaces, plugin manager, registry, assembly and the training loop.

Imports torch, numpy, pluggy and attrs only; never click, rich or soundfile. The interfaces (and with them
torch) are imported on first use, so ``snnkit --help`` and a plugin's entry module load without torch.
"""

from .contract.errors import SnnkitError
from .contract.hookspecs import hookimpl
from .contract.params import Param

_INTERFACES = frozenset(
    {"ArrayData", "Batch", "Compatibility", "Connectivity", "Dataset", "LearningRule", "Neuron", "Recurrence"}
)


def __getattr__(name: str):
    if name in _INTERFACES:
        from .contract import interfaces

        return getattr(interfaces, name)
    raise AttributeError(f"module 'snnkit_core' has no attribute {name!r}")

__version__ = "0.2.0"

__all__ = ["ArrayData", "Batch", "Compatibility", "Connectivity", "Dataset", "LearningRule", "Neuron", "Param",
           "Recurrence", "SnnkitError", "hookimpl"]
