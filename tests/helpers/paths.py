"""Where the repository and the real task data are, and markers for tests that need that data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Real task data: $GLUE_DIR, else ../shared/data/glue beside the repository (never committed).
REAL_GLUE = Path(os.environ.get("GLUE_DIR") or REPO.parent / "shared" / "data" / "glue")


def has_real_glue(*folders: str) -> bool:
    return all((REAL_GLUE / f).is_dir() for f in folders)


def requires_real_glue(*folders: str):
    """Skip (saying why) unless the real task folders are present; such tests are also `slow`."""
    missing = [f for f in folders if not (REAL_GLUE / f).is_dir()]
    skip = pytest.mark.skipif(bool(missing), reason=f"no real GLUE data for {', '.join(missing)} under {REAL_GLUE} "
                                                    "(set GLUE_DIR to a GLUE-format folder)")
    return lambda test: pytest.mark.slow(skip(test))
