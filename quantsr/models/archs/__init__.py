"""One module per architecture; importing a module registers it (``quantsr.models.registry`` imports them all)."""
