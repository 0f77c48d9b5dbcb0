"""The four component interfaces: Neuron, Connectivity, LearningRule, Dataset.

Conventions (everywhere in snnkit):

* tensors are time-major: ``(T, B, N)``; one step is ``dt`` (1 ms in the papers);
* a neuron's *output* ``y`` is what the next layer's weights multiply: the normalised PSC ``a`` for ``lif``,
  the spikes ``s`` for neurons without a synaptic trace;
* recurrent connections act on the same output ``y`` of the layer's own past steps.

Capabilities are class attributes, so assembly can check a combination before anything is built.
"""


from snnkit_core.contract.component import Component
from snnkit_core.contract.connectivity import Connectivity, Recurrence
from snnkit_core.contract.dataset import ArrayData, Dataset
from snnkit_core.contract.neuron import Neuron
from snnkit_core.contract.rule import Batch, Compatibility, LearningRule

__all__ = ["ArrayData", "Batch", "Compatibility", "Component", "Connectivity", "Dataset", "LearningRule", "Neuron",
           "Recurrence"]
