import sys

from anonlab.cli import main

sys.exit(main())
