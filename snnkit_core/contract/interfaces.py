"""The four component interfaces: Neuron, Connectivity, LearningRule, Dataset. Their conventions (time-major
``(T, B, N)`` tensors, a neuron's output ``y`` as what the next weights multiply, capabilities as class attributes
checked before anything is built): docs/concepts.md."""


from snnkit_core.contract.component import Component
from snnkit_core.contract.connectivity import Connectivity, Recurrence
from snnkit_core.contract.dataset import ArrayData, Dataset
from snnkit_core.contract.neuron import Neuron
from snnkit_core.contract.rule import Batch, Compatibility, LearningRule

__all__ = ["ArrayData", "Batch", "Compatibility", "Component", "Connectivity", "Dataset", "LearningRule", "Neuron",
           "Recurrence"]
