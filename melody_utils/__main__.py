"""``python -m melody_utils ...``: see :mod:`melody_utils.cli`."""

import sys

from .cli import main

sys.exit(main())
