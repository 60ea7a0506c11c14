"""``python -m kgi``: the ``kgi`` command line (``kgi.cli``), where the installed ``kgi`` script is not on the path."""

import sys

from kgi.cli import main

sys.exit(main())
