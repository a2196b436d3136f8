"""``python -m wsolkit.cli``."""

import sys

from wsolkit.cli import main

sys.exit(main())
