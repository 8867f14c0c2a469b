"""The training command run as a user runs it: `python -m childtuning.train ...` in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys

from helpers.paths import REPO


def launch(*args, cwd=REPO, env=None, path=None):
    """`python -m childtuning.train <args>` in `cwd`, offline, wandb off, GLUE_DIR and results unset."""
    base = {k: v for k, v in os.environ.items() if k not in ("GLUE_DIR", "CHILDTUNING_RESULTS", "HYDRA_FULL_ERROR")}
    base.update({"WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})})
    if path is not None:
        base["PATH"] = path
    return subprocess.run([sys.executable, "-m", "childtuning.train", *args], cwd=cwd, env=base,
                          capture_output=True, text=True, timeout=300)
