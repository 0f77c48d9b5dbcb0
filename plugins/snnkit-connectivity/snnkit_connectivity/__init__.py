"""snnkit-connectivity: recurrence patterns and extra layer-to-layer edges."""
