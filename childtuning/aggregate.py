"""`python -m childtuning.aggregate <experiment>`: the report package's command line (childtuning.report)."""
import sys

from .report import (aggregate, available_experiments, bootstrap_ci, load_records, load_spec, main,  # noqa: F401
                     paired, summarize, welch_p, write_outputs)

if __name__ == "__main__":
    sys.exit(main())
