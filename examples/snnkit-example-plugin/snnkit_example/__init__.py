"""snnkit-example-plugin: a complete third-party snnkit plugin (neuron ``if``, dataset ``poisson-bands``)."""

__version__ = "0.1.0"
