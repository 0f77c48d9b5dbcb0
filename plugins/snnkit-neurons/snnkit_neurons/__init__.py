"""snnkit-neurons: neuron models. Each model is a pure step function plus a thin nn.Module wrapper."""
