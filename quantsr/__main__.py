"""``python -m quantsr`` runs the command-line tool."""
import sys

from quantsr.cli import main

sys.exit(main())
