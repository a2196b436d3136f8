"""``python -m wsolkit`` (also under ``torchrun ... -m wsolkit``)."""

import sys

from wsolkit.cli import main

sys.exit(main())
