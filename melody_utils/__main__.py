"""``python -m melody_utils ...``: see :mod:`melody_utils.cli.commands`."""

import sys

from .cli import main

sys.exit(main())
