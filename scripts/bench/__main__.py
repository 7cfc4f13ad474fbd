"""`python -m scripts.bench`: see scripts/bench/__init__.py."""

from __future__ import annotations

import sys

from scripts.bench.run import main

if __name__ == "__main__":
    sys.exit(main())
