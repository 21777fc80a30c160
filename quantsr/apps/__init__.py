"""Filling the demo apps (``android_demo/``, ``ios_demo/``) with exported models: ``quantsr mobile sync``.
Standard library only."""
