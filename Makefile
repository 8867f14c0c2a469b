# Child-Tuning harness. `make help` lists the targets.
PY        := .venv/bin/python
RESULTS   ?= results
LAUNCHER  ?= local
SETUP     := .venv/.setup-done
export WANDB_MODE ?= offline

# LAUNCHER=local runs a sweep's runs one after another; LAUNCHER=parallel runs JOBS of them side by
# side in worker processes, one thread each (hydra-joblib-launcher, conf/hydra/launcher/parallel.yaml);
# LAUNCHER=slurm submits each run as a SLURM job (hydra-submitit-launcher, conf/hydra/launcher/slurm.yaml)
# and turns on per-epoch checkpoints so requeued (preempted) jobs resume.
JOBS      ?= 2
TEST_JOBS ?= 2
export CHILDTUNING_JOBS := $(JOBS)
PARALLEL  := hydra/launcher=parallel impl.num_threads=1 impl.progress_bar=false
ifeq ($(LAUNCHER),slurm)
  LAUNCH := hydra/launcher=slurm trainer.checkpoint=true
else ifeq ($(LAUNCHER),parallel)
  LAUNCH := $(PARALLEL)
else
  LAUNCH :=
endif
SWEEP = $(PY) -m childtuning.train -m paths.results=$(RESULTS) $(LAUNCH)

# CPU studies run JOBS runs at a time, one thread each, unless LAUNCHER=slurm. One thread per run is
# how the committed records were made: a run's arithmetic then does not depend on the machine's
# core count. (Two runs side by side are not faster than one two-thread run after another on 2 cores:
# an MRPC run took 180 s alone on 2 threads, 375-397 s two at a time on 1 thread.)
ifeq ($(LAUNCHER),slurm)
  CPU_SWEEP = $(SWEEP)
else
  CPU_SWEEP = $(PY) -m childtuning.train -m paths.results=$(RESULTS) $(PARALLEL)
endif

.PHONY: help setup test test-fast test-fast-coverage demo smoke plan tables reproduce-table1 reproduce-table1-cpu reproduce-domain-transfer \
	reproduce-domain-transfer-cpu reproduce-task-transfer reproduce-task-transfer-cpu reproduce-task-transfer-std-cpu \
	reproduce-prior-methods \
	reproduce-prior-methods-cpu reproduce-child-networks-cpu bench \
	reproduce-low-resource reproduce-ablation reproduce-ablation-prune reproduce-keep-ratio reproduce-overlap \
	reproduce-table1-minilm-gpu gpu-carry gpu-dry-run

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-31s %s\n", $$1, $$2}'
	@echo "  variables: RESULTS=<dir> (default results)  LAUNCHER=local|parallel|slurm  JOBS=2  TEST_JOBS=2  GPU_JOBS=8  GLUE_DIR=<GLUE-format folder>  EXP=<experiment>"
	@echo "  notebooks, headless: .venv/bin/jupyter execute notebooks/<name>.ipynb (first steps: docs/first-run.md)"

setup: $(SETUP)  ## create .venv and install the project (torch 2.13.0 CPU build first where there is no GPU)

$(SETUP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch; \
	  else $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e '.[dev]'
	touch $(SETUP)

test: $(SETUP)  ## run the test suite in TEST_JOBS=2 workers (offline; real-data tests skip when no GLUE folder is found)
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile

test-fast: $(SETUP)  ## the development loop: the tests not marked slow (478 in 36 s on 2 cores); an unmarked test over 5 s of CPU fails
	CHILDTUNING_TEST_BUDGET_S=5 $(PY) -m pytest -q -n $(TEST_JOBS) -m "not slow"

# One process (coverage follows no xdist worker) and no CPU budget (tracing slows every test). The
# module check runs even when a test fails; the target fails if either does.
test-fast-coverage: $(SETUP)  ## the fast tests under coverage.py, then the modules of childtuning/ none of whose functions they ran (fails on any)
	env -u CHILDTUNING_TEST_BUDGET_S $(PY) -m coverage run --source=childtuning -m pytest -q -p no:xdist -m "not slow"; \
	  tests=$$?; $(PY) tests/untouched_modules.py .coverage && exit $$tests

demo: $(SETUP)  ## the offline demo: MiniLM x MRPC (1k examples) x vanilla/CT-F/CT-D, seed 1, run again (force), then its table
	$(SWEEP) exp=demo force=true
	$(PY) -m childtuning.aggregate demo --results $(RESULTS)

smoke: $(SETUP)  ## tiny random model, 2 methods x 2 seeds, 1 thread (14-15 s in 3 of 4 timed runs on 2 shared cores; docs/first-run.md)
	$(SWEEP) exp=smoke
	$(PY) -m childtuning.aggregate smoke --results $(RESULTS)

plan: $(SETUP)  ## a sweep's plan without running it: each cell to run, complete, reused or refused, and its estimated time (EXP=<name>)
	@test -n "$(EXP)" || { echo "make plan EXP=<experiment>: name one of experiments/*.yaml"; exit 2; }
	$(SWEEP) exp=$(EXP) preflight.dry_run=true

tables: $(SETUP)  ## aggregate every experiment that has records under RESULTS
	@for d in $(RESULTS)/*/runs; do e=$$(basename $$(dirname $$d)); \
	  $(PY) -m childtuning.aggregate $$e --results $(RESULTS) || exit 1; done

reproduce-table1: $(SETUP)  ## paper Table 1: 4 large models x 4 tasks x 3 methods x 10 seeds (GPU / cluster)
	$(SWEEP) exp=table1
	$(PY) -m childtuning.aggregate table1 --results $(RESULTS)

reproduce-table1-cpu: $(SETUP)  ## Table 1's grid on MiniLM, 1k-example subsets, 5 seeds (about 3.5 h on 2 cores)
	$(CPU_SWEEP) exp=table1_cpu
	$(PY) -m childtuning.aggregate table1_cpu --results $(RESULTS)

reproduce-domain-transfer: $(SETUP)  ## paper Sec. 3.4 domain transfer: BERT-large on 5k MNLI / SNLI pairs, 6 targets, 3 methods x 5 seeds (GPU / cluster)
	$(SWEEP) exp=domain_transfer
	$(PY) -m childtuning.aggregate domain_transfer --results $(RESULTS)

reproduce-domain-transfer-cpu: $(SETUP)  ## domain transfer on MiniLM with offline substitutes (5k pairs of MNLI dev / SNLI test), 3 seeds (about 2-2.5 h on 2 cores: 4.26 h of one-thread run time)
	$(CPU_SWEEP) exp=domain_transfer_cpu
	$(PY) -m childtuning.aggregate domain_transfer_cpu --results $(RESULTS)

reproduce-prior-methods: $(SETUP)  ## paper Sec. 4.1: BERT-large, 4 tasks, vanilla/CT + 5 prior methods + CT_D combinations, 10 seeds (GPU / cluster)
	$(SWEEP) exp=prior_methods
	$(PY) -m childtuning.aggregate prior_methods --results $(RESULTS)

reproduce-prior-methods-cpu: $(SETUP)  ## the same on MiniLM, MRPC/STS-B 1k subsets, 5 seeds, tuned rates (about 3 h on 2 cores, after the search stage)
	$(CPU_SWEEP) exp=lr_search_tuned_cpu
	$(PY) -m childtuning.protocol table1_cpu_tuned --results $(RESULTS)
	$(CPU_SWEEP) exp=prior_methods_cpu
	$(PY) -m childtuning.aggregate prior_methods_cpu --results $(RESULTS)

# The probes of a CPU study: JOBS probe processes side by side, one thread each, each taking every
# JOBS-th encoder of the plan (probe.shard); a failed shard fails the target.
define PROBE_CPU
	pids=""; for k in $$(seq 0 $$(($(JOBS) - 1))); do \
	  $(PY) -m childtuning.probe exp=$(1) paths.results=$(RESULTS) impl.num_threads=1 impl.progress_bar=false \
	    probe.shard=$$k/$(JOBS) & pids="$$pids $$!"; \
	done; for p in $$pids; do wait $$p || exit 1; done
endef

reproduce-task-transfer: $(SETUP)  ## paper Sec. 3.4: BERT-large on SST-2 x 3 methods x 5 seeds, linear probes on CoLA/MRPC/STS-B/RTE (GPU / cluster)
	$(SWEEP) exp=task_transfer
	$(PY) -m childtuning.probe exp=task_transfer paths.results=$(RESULTS)
	$(PY) -m childtuning.aggregate task_transfer --results $(RESULTS)

reproduce-task-transfer-cpu: $(SETUP)  ## task transfer on MiniLM: SST-2 (5k) sources, probes on 4 targets (about 1 h on 2 idle cores, 2.6 h on busy ones)
	$(CPU_SWEEP) exp=task_transfer_cpu
	$(call PROBE_CPU,task_transfer_cpu)
	$(PY) -m childtuning.aggregate task_transfer_cpu --results $(RESULTS)

reproduce-task-transfer-std-cpu: $(SETUP)  ## the same with standardised probe heads (reuses task_transfer_cpu's runs; about 20 min without the features cache)
	$(CPU_SWEEP) exp=task_transfer_std_cpu
	$(call PROBE_CPU,task_transfer_std_cpu)
	$(PY) -m childtuning.aggregate task_transfer_std_cpu --results $(RESULTS)

# Issue 16's CPU studies, in the order that shares the most Fisher passes (childtuning/fisher_cache.py):
# the overlap masks first, then the tuning protocol (search stage, selection, confirmation), then the
# ablations at the selected rates. About 8.4 h on 2 cores (README); a relaunch skips finished runs.
STUDIES16 := overlap_cpu lr_search_tuned_cpu table1_cpu_tuned ablation_cpu ablation_prune_cpu ablation_keep_ratio_cpu
reproduce-child-networks-cpu: $(SETUP)  ## issue 16: overlap, tuned Table 1 (search + protocol), ablations, keep ratios (~8.4 h on 2 cores)
	$(CPU_SWEEP) exp=overlap_cpu
	$(CPU_SWEEP) exp=lr_search_tuned_cpu
	$(PY) -m childtuning.protocol table1_cpu_tuned --results $(RESULTS)
	for e in table1_cpu_tuned ablation_cpu ablation_prune_cpu ablation_keep_ratio_cpu; do \
	  $(CPU_SWEEP) exp=$$e || exit 1; done
	for e in $(STUDIES16); do $(PY) -m childtuning.aggregate $$e --results $(RESULTS) || exit 1; done

# The paper's analyses at its scale (BERT-large; GPU / cluster). Each help line's cost: `python
# benchmarks/gpu_estimate.py <experiment>` from the committed H200 measurement (BERT-large shape, bf16,
# lengths rounded to 8: pass impl.precision=bf16 impl.pad_to_multiple_of=8 to run at that rate), 8 runs
# sharing one GPU, before any run is reused from table1's records.
reproduce-low-resource: $(SETUP)  ## paper Sec. 4.2: BERT-large on 1k-example subsets x 3 methods x 10 seeds (est. 0.09 H200-h)
	$(SWEEP) exp=low_resource
	$(PY) -m childtuning.aggregate low_resource --results $(RESULTS)

reproduce-ablation: $(SETUP)  ## paper Sec. 4.3: Child-Tuning_D's child network top / random / bottom, BERT-large, 10 seeds (est. 0.58 H200-h)
	$(SWEEP) exp=ablation
	$(PY) -m childtuning.aggregate ablation --results $(RESULTS)

reproduce-ablation-prune: $(SETUP)  ## paper Sec. 4.4: pruning the non-child weights, BERT-large, 10 seeds (est. 0.38 H200-h)
	$(SWEEP) exp=ablation_prune
	$(PY) -m childtuning.aggregate ablation_prune --results $(RESULTS)

reproduce-keep-ratio: $(SETUP)  ## keep ratios 0.1/0.2/0.4/0.7/1.0 for Child-Tuning_F/_D, BERT-large, 4 tasks, 10 seeds (est. 1.62 H200-h)
	$(SWEEP) exp=ablation_keep_ratio
	$(PY) -m childtuning.aggregate ablation_keep_ratio --results $(RESULTS)

reproduce-overlap: $(SETUP)  ## paper Sec. 4.5: overlap of BERT-large's child networks, full training sets, seeds 1-3 (est. 0.02 H200-h)
	$(SWEEP) exp=overlap
	$(PY) -m childtuning.aggregate overlap --results $(RESULTS)

# Table 1's protocol on MiniLM on one GPU, GPU_JOBS runs sharing it (issue 31; docs/gpu.md). On a
# lent device machine, benchmarks/gpu_session.py runs it after a measurement that projects its time.
GPU_JOBS ?= 8
reproduce-table1-minilm-gpu: $(SETUP)  ## Table 1's protocol on MiniLM, full training sets, 10 seeds, bf16 on one GPU (GPU_JOBS=8 runs at once)
	CHILDTUNING_JOBS=$(GPU_JOBS) $(PY) -m childtuning.train -m paths.results=$(RESULTS) hydra/launcher=parallel exp=table1_minilm_gpu
	$(PY) -m childtuning.aggregate table1_minilm_gpu --results $(RESULTS)

gpu-carry: $(SETUP)  ## pack .gpu/a and .gpu/b for the two device calls (MiniLM in checksummed parts, GLUE, wheels; docs/gpu.md)
	$(PY) benchmarks/gpu_carry.py pack

gpu-dry-run: $(SETUP)  ## the device calls' stages on this CPU with a tiny model and data slices (minutes)
	$(PY) benchmarks/gpu_session.py --dry-run --out /tmp/childtuning-gpu-dry-run/out

bench: $(SETUP)  ## the CPU benchmarks the README quotes (about 50 min on 2 quiet cores; each prints one JSON line last)
	$(PY) benchmarks/fisher_threshold.py
	$(PY) benchmarks/child_tuning_overhead.py --steps 40
	$(PY) benchmarks/run_vs_trainer.py
	$(PY) benchmarks/packing.py
	$(PY) benchmarks/optimizer_step.py
	$(PY) benchmarks/method_overhead.py
	$(PY) benchmarks/pretrained_load.py --threads 1
	$(PY) benchmarks/pretrained_load.py --threads 1 --shape bert-large --rounds 6
