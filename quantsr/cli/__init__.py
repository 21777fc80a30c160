"""The ``quantsr`` command: a thin argparse layer over the library. Imports nothing heavy until a command runs,
so ``quantsr --help`` and ``--version`` answer without torch."""
from quantsr.cli.parser import main

__all__ = ["main"]
