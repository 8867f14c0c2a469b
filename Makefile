# Child-Tuning harness. `make help` lists the targets.
PY        := .venv/bin/python
RESULTS   ?= results
LAUNCHER  ?= local
SETUP     := .venv/.setup-done
export WANDB_MODE ?= offline

# LAUNCHER=slurm submits each run as a SLURM job (hydra-submitit-launcher, conf/hydra/launcher/slurm.yaml)
# and turns on per-epoch checkpoints so requeued (preempted) jobs resume.
ifeq ($(LAUNCHER),slurm)
  LAUNCH := hydra/launcher=slurm trainer.checkpoint=true
else
  LAUNCH :=
endif
comma := ,
SWEEP = $(PY) -m childtuning.train -m paths.results=$(RESULTS) $(LAUNCH)

# table1_cpu: on SLURM one sweep (a job per run); locally two sweeps side by side, tasks split so
# both take about as long, one thread per run. That is how the committed records were made; it is
# no faster than one two-thread sweep on 2 cores (an MRPC run took 180 s alone on 2 threads, 375-397 s
# two at a time on 1 thread), but it keeps each run's arithmetic independent of the machine's
# core count. A relaunch skips finished runs either way.
ifeq ($(LAUNCHER),slurm)
  TABLE1_CPU = $(SWEEP) exp=table1_cpu
else
  HALF = $(SWEEP) exp=table1_cpu impl.num_threads=1 impl.progress_bar=false task=$(1) \
	'hydra.sweep.dir=$${paths.results}/$${experiment}/hydra/multirun-$${now:%Y-%m-%d_%H-%M-%S}-$(subst $(comma),_,$(1))'
  TABLE1_CPU = $(call HALF,rte$(comma)cola) & pid=$$!; $(call HALF,mrpc$(comma)stsb); rb=$$?; \
	wait $$pid; ra=$$?; test $$ra -eq 0 -a $$rb -eq 0
endif

.PHONY: help setup test demo smoke tables reproduce-table1 reproduce-table1-cpu bench

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-22s %s\n", $$1, $$2}'
	@echo "  variables: RESULTS=<dir> (default results)  LAUNCHER=local|slurm  GLUE_DIR=<GLUE-format folder>"

setup: $(SETUP)  ## create .venv and install the project (torch 2.13.0 CPU build first where there is no GPU)

$(SETUP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch; \
	  else $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e '.[dev]'
	touch $(SETUP)

test: $(SETUP)  ## run the test suite (offline; real-data tests skip when no GLUE folder is found)
	$(PY) -m pytest -q

demo: $(SETUP)  ## the offline demo: MiniLM x MRPC (1k examples) x vanilla/CT-F/CT-D, then its table
	$(SWEEP) exp=demo
	$(PY) -m childtuning.aggregate demo --results $(RESULTS)

smoke: $(SETUP)  ## tiny random model, 2 methods x 2 seeds (under a minute)
	$(SWEEP) exp=smoke
	$(PY) -m childtuning.aggregate smoke --results $(RESULTS)

tables: $(SETUP)  ## aggregate every experiment that has records under RESULTS
	@for d in $(RESULTS)/*/runs; do e=$$(basename $$(dirname $$d)); \
	  if [ -f experiments/$$e.yaml ]; then $(PY) -m childtuning.aggregate $$e --results $(RESULTS) || exit 1; fi; done

reproduce-table1: $(SETUP)  ## paper Table 1: 4 large models x 4 tasks x 3 methods x 10 seeds (GPU / cluster)
	$(SWEEP) exp=table1
	$(PY) -m childtuning.aggregate table1 --results $(RESULTS)

reproduce-table1-cpu: $(SETUP)  ## Table 1's grid on MiniLM, 1k-example subsets, 5 seeds (about 3.5 h on 2 cores)
	$(TABLE1_CPU)
	$(PY) -m childtuning.aggregate table1_cpu --results $(RESULTS)

bench: $(SETUP)  ## the benchmarks (minutes; each prints one JSON line last)
	$(PY) benchmarks/fisher_threshold.py
	$(PY) benchmarks/child_tuning_overhead.py
	$(PY) benchmarks/run_vs_trainer.py
