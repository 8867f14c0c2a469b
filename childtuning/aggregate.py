"""`python -m childtuning.aggregate <experiment>`: the report package's command line (childtuning.report)."""
import sys

from .report import (aggregate, available_experiments, compare, load_records, load_spec, main,  # noqa: F401
                     summarize, write_outputs)

if __name__ == "__main__":
    sys.exit(main())
