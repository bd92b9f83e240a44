"""``python -m mdmest.cli``: the same as the ``mdmest`` command."""

import sys

from mdmest.cli import main

sys.exit(main())
