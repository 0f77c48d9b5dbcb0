"""snnkit-datasets: loaders and audio front-ends. Each loader module defines ``register(register)``."""
