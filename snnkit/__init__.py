"""snnkit: fast, tested, pluggable training of recurrent spiking neural networks.

:mod:`snnkit.testing` holds the contract tests a plugin subclasses (also loaded as a pytest plugin).
"""
