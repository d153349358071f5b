"""``python -m hyperoptax`` runs the ``hyperoptax`` console script."""

import sys

from hyperoptax.cli import main

sys.exit(main())
