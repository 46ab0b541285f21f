"""``python -m sfllava_ext.cli``: the ``sfllava`` command."""

import sys

from . import main

sys.exit(main())
