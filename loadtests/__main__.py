"""``python -m loadtests`` = ``respcheck load``."""

import sys

from loadtests.cli import main

sys.exit(main())
