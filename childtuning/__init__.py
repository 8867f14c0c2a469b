"""Child-Tuning (Xu et al., EMNLP 2021) and baselines, fine-tuned and compared on GLUE."""

__version__ = "0.1.0"
SCHEMA_VERSION = 2   # 2: run ids hash only outcome keys (childtuning.migrate upgrades 1)
