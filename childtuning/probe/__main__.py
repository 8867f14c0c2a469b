"""`python -m childtuning.probe [overrides]`: see childtuning/probe/__init__.py."""
import sys

from .run import main

if __name__ == "__main__":
    sys.exit(main())
