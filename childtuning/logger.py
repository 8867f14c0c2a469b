"""Optional experiment tracking. A logging failure is reported once and never kills a run."""
from __future__ import annotations

import os
import warnings
from pathlib import Path


class Logger:
    def __init__(self, cfg, run_name: str, config: dict):
        self.run = None
        if cfg.name != "wandb":
            return
        try:
            os.environ.setdefault("WANDB_MODE", cfg.mode)
            import wandb
            if cfg.get("dir"):
                Path(cfg.dir).mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(project=cfg.project, entity=cfg.entity, name=run_name, config=config,
                                  mode=cfg.mode, reinit="finish_previous", dir=cfg.get("dir"))
        except Exception as e:  # noqa: BLE001 - logging must never stop training
            warnings.warn(f"wandb disabled for this run: {type(e).__name__}: {e}")

    def __call__(self, values: dict, step: int) -> None:
        if self.run is not None:
            try:
                self.run.log(values, step=step)
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"wandb logging failed, continuing without it: {e}")
                self.run = None

    def finish(self, summary: dict) -> None:
        if self.run is not None:
            try:
                self.run.summary.update(summary)
                self.run.finish()
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"wandb finish failed: {e}")
