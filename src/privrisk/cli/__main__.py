"""``python -m privrisk.cli``: the same as the ``privrisk`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
