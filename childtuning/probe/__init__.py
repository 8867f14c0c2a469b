"""Task transfer by linear probes (paper Sec. 3.4): freeze a fine-tuned encoder, train a fresh
linear head on another task, score it on that task's dev set.

    python -m childtuning.probe exp=task_transfer_cpu              # every saved run of the sweep, + the reference
    python -m childtuning.probe probe.sources=[table1_cpu/<run_id>] probe.targets=[mrpc,stsb] experiment=my_probes
    python -m childtuning.probe model.source=run +model.run=<experiment>/<run_id> probe.targets=[rte]

Arguments are Hydra-style overrides of the run config (conf/config.yaml, as for
`python -m childtuning.train`: exp=, paths.*, impl.*, experiment=, force=) and of the probe's
settings (`probe.<key>=`, conf/probe/default.yaml: targets, head_seeds, reference, sources, lr,
epochs, batch_size, representation, max_length). Sources: `probe.sources` ("<experiment>/<run_id>"
of runs saved with trainer.save_model=true), else `model.source=run`, else every run of the
experiment's sweep (the command line's own sweep keys, e.g. method=vanilla, narrow it). With
probe.reference=true the model those runs started from is probed too, un-fine-tuned.
Records: <paths.results>/<experiment>/probes/<probe id>.json; features are cached under
<paths.cache>/probe_features. Modules: config (settings), sources (which encoders), features
(what the head reads), head (the linear head), records, run (the command).
"""
