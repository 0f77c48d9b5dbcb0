"""snnkit-rules: learning rules (surrogate-gradient BPTT, TSSL-BP, BIP, ...)."""
