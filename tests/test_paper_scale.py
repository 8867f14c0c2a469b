"""The paper-scale experiment files (BERT-large and the other large models, and the GPU study on
MiniLM) pass pre-flight cell by cell as a GPU box would run them: composed, validated, their data
found, their results folder writable. Offline, the large models' weights are not in the Hugging
Face cache: pre-flight runs against a cache holding a stand-in of each model's files (nothing may
be refused), and the model check itself is shown to refuse each model against an empty cache."""
from __future__ import annotations

import math

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from childtuning import REPO_ROOT
from childtuning.preflight import CellComposer, check_cells, sweep_jobs
from childtuning.report import load_spec

# experiment -> the hub models its cells load (their weights are not in this machine's cache)
PAPER_SCALE = {
    "table1": ["bert-large-cased", "xlnet-large-cased", "roberta-large", "google/electra-large-discriminator"],
    "low_resource": ["bert-large-cased"],
    "ablation": ["bert-large-cased"],
    "ablation_prune": ["bert-large-cased"],
    "ablation_keep_ratio": ["bert-large-cased"],
    "overlap": ["bert-large-cased"],
    "prior_methods": ["bert-large-cased"],
    "table1_minilm_gpu": [],        # the pip-shipped MiniLM: found offline
}


def fake_hub_cache(root, repos):
    """A Hugging Face hub cache holding, for each repo, a snapshot with config.json and an empty
    weights file: what pre-flight looks for (childtuning/preflight.model_problem)."""
    for repo in repos:
        folder = root / f"models--{repo.replace('/', '--')}"
        snapshot = folder / "snapshots" / ("0" * 40)
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text("{}")
        (snapshot / "model.safetensors").write_bytes(b"")
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text("0" * 40)
    return root


def preflight(experiment, *overrides):
    """Pre-flight's report on `python -m childtuning.train -m exp=<experiment> <overrides>`."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        master = GlobalHydra.instance().hydra.compose_config("config", [f"exp={experiment}", *overrides],
                                                            run_mode=RunMode.MULTIRUN)
        composer = CellComposer(lambda o: compose("config", overrides=list(o)), set(master.hydra.runtime.choices))
        return check_cells(sweep_jobs(master), composer)


SLOW = {"table1", "prior_methods"}     # 480 and 520 cells of several methods: half a minute each


@pytest.mark.slow
@pytest.mark.parametrize("experiment", [pytest.param(e, marks=pytest.mark.slow) if e in SLOW else e
                                        for e in sorted(PAPER_SCALE)])
def test_paper_scale_experiment_passes_preflight(experiment, synthetic_glue, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from childtuning.config import compose as compose_run
    from childtuning.preflight import model_problem

    spec = load_spec(experiment)
    cells = math.prod(len(spec.expected[a]) for a in spec.key + ["seed"])
    repos = PAPER_SCALE[experiment]
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(fake_hub_cache(tmp_path / "cache", repos)))
    report = preflight(experiment, f"paths.glue_dir={synthetic_glue}", f"paths.results={tmp_path / 'results'}")
    assert not report.bad, report.refusal()
    assert report.cells == cells and len(set(report.run_ids)) + len(report.duplicates) == cells
    assert report.summary().startswith(f"pre-flight: {cells} cell(s) checked")

    # The stand-in cache is what let the model check pass: without it, each model is refused.
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(empty))
    for repo in repos:
        problem = model_problem(compose_run(f"model={model_name(repo)}").model)
        assert problem is not None and f"{repo} is not in the local Hugging Face cache {empty}" in problem


def model_name(repo: str) -> str:
    """The conf/model option whose `pretrained` is `repo`."""
    for path in (REPO_ROOT / "conf" / "model").glob("*.yaml"):
        cfg = OmegaConf.load(path)
        if cfg.get("pretrained") == repo:
            return cfg.name
    raise AssertionError(f"no conf/model file loads {repo}")


def test_the_gpu_study_pins_its_settings():
    """table1_minilm_gpu is the GPU study: CUDA, bf16, padded batches rounded to 8, the official
    hyper-parameters and full training sets, and its seeds lead the sweep (runs end seed by seed)."""
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["exp=table1_minilm_gpu"], return_hydra_config=True)
    assert (cfg.impl.device, cfg.impl.precision, cfg.impl.packing, cfg.impl.pad_to_multiple_of) == ("cuda", "bf16", False, 8)
    assert (cfg.trainer.lr, cfg.trainer.epochs, cfg.trainer.batch_size, cfg.task.max_train_samples) == (4e-5, 3, 16, None)
    assert list(cfg.hydra.sweeper.params)[0] == "seed"
