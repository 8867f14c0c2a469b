"""Child-Tuning (Xu et al., EMNLP 2021) and baselines, fine-tuned and compared on GLUE."""

from pathlib import Path

__version__ = "0.1.0"
REPO_ROOT = Path(__file__).resolve().parents[1]   # the checkout (conf/, experiments/, results/)
SCHEMA_VERSION = 3   # 2: run ids hash only outcome keys; 3: evaluation targets out of the run id, into target records (childtuning.migrate upgrades 1 and 2)
