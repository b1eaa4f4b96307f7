"""``python -m anonlab``: the same command line as the ``anonlab`` script."""

import sys

from anonlab.cli import main

sys.exit(main())
