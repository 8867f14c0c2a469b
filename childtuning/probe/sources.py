"""Which encoders a probe command probes, found and checked before any model is loaded: the saved
runs of an experiment's sweep (or runs named "<experiment>/<run_id>"), and the pretrained
reference (the model those runs started from, un-fine-tuned)."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from omegaconf import OmegaConf

from .. import saved_models, sweep
from ..config import validate
from ..schemas import id_part
from ..errors import InputError
from ..integrity import read_complete
from ..record import run_id, runs_dir
from .records import PRETRAINED


@dataclass(frozen=True)
class Source:
    """One encoder to probe: a saved run, or (saved=None) the pretrained model `model`."""
    model: dict                                # the model config the encoder comes from (resolved)
    saved: saved_models.SavedRun | None = None

    @property
    def label(self) -> str:
        """The start of its probes' run ids."""
        return self.saved.run_id if self.saved else f"{self.model['name']}.{PRETRAINED}"

    @property
    def method(self) -> str:
        return self.saved.record["method"] if self.saved else PRETRAINED

    def outcome(self) -> dict:
        """What identifies the encoder in a probe's run id: the source run's id (which hashes its
        whole outcome), or the pretrained model's config."""
        return {"run": self.saved.run_id} if self.saved else {PRETRAINED: id_part("model", self.model)}

    def describe(self) -> dict:
        """The probe record's `source` entry."""
        if self.saved is None:
            return {"kind": PRETRAINED, "model": self.model}
        r = self.saved.record
        return {"kind": "run", "ref": self.saved.ref, "run_id": r["run_id"], "experiment": self.saved.experiment,
                "model": r["model"], "task": r["task"], "method": r["method"], "seed": r["seed"],
                "status": r["status"], "reason": r.get("reason"), "main_metric": r.get("main_metric"),
                "model_files": self.saved.files}


def from_sweep(cfg, overrides: list[str], results: str) -> tuple[list[Source], list[dict]]:
    """The saved runs of the experiment's sweep, and the model configs they start from. A run without
    a record is an error (run the sweep first); a failed run (no model) is skipped, and said so."""
    sources, models, missing = [], {}, []
    for job in sweep.experiment_jobs(overrides):
        run_cfg = validate(sweep.compose(job))
        resolved = OmegaConf.to_container(run_cfg, resolve=True)
        models.setdefault(json.dumps(id_part("model", resolved["model"]), sort_keys=True), resolved["model"])
        rid = run_id(run_cfg)
        record = read_complete(runs_dir(results, run_cfg.experiment) / f"{rid}.json")
        if record is None:
            missing.append(rid)
        elif record["status"] == "failed" and not (record.get("artifacts") or {}).get("model"):
            print(f"note: source run {rid} failed ({record.get('reason')}): it has no model to probe; the table counts it",
                  file=sys.stderr)
        else:
            sources.append(Source(resolved["model"], saved_models.resolve(results, f"{run_cfg.experiment}/{rid}")))
    if missing:
        raise InputError(f"{len(missing)} source run(s) of experiment {cfg.experiment} have no complete record under "
                         f"{runs_dir(results, cfg.experiment)}, e.g. {missing[0]}: run the source sweep first "
                         f"(python -m childtuning.train -m exp={cfg.experiment} paths.results={results})")
    return sources, list(models.values())


def from_refs(refs: list[str], results: str) -> tuple[list[Source], list[dict]]:
    """Named saved runs ("<experiment>/<run_id>"), each checked, and the model configs they started from."""
    sources, models = [], {}
    for ref in refs:
        saved = saved_models.resolve(results, ref)
        model = (saved.record.get("config") or {}).get("model")
        if not isinstance(model, dict):
            raise InputError(f"source run {ref}: its record has no config.model (the model it started from)")
        models.setdefault(json.dumps(id_part("model", model), sort_keys=True), model)
        sources.append(Source(model, saved))
    return sources, list(models.values())


def plan(cfg, overrides: list[str], settings, results: str) -> list[Source]:
    """Every encoder to probe, checked: `probe.sources` if given, else `model.source=run` with
    `model.run`, else the experiment's sweep; then one pretrained reference per starting model
    when `probe.reference`."""
    if settings.sources:
        sources, models = from_refs(list(settings.sources), results)
    elif cfg.model.source == "run":
        if not cfg.model.get("run"):
            raise InputError("model.source=run needs +model.run=<experiment>/<run_id> (a run saved with trainer.save_model=true)")
        sources, models = from_refs([cfg.model.run], results)
    else:
        sources, models = from_sweep(cfg, overrides, results)
    if settings.reference:
        sources = [Source(m) for m in models] + sources
    return sources
