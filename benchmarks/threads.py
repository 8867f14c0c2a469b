"""One run's time at torch's default thread count, at 1 thread and at the harness's default (the
cores this process may use, childtuning/threads.py), on a quiet machine and with busy processes
competing for the cores.

Each setting runs the same run (vanilla, seed 1, a subset of RTE, 1 epoch) through the runner
(`childtuning.train.run`) with `impl.num_threads` set to its count, `--repeats` times in a rotating
order; the fastest counts (noise on a shared machine only adds time). With `--busy K`, K processes
spin on the CPU for the whole measurement (another user's job on the same cores). Timed: the
record's train_seconds (training steps + dev evaluation) and the wall time of the whole run.

    python benchmarks/threads.py [--model minilm] [--samples 256] [--repeats 2] [--busy 0 1]

Ratios to the 1-thread run are reported, never asserted. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["WANDB_MODE"] = "disabled"
import torch  # noqa: E402

TORCH_DEFAULT = torch.get_num_threads()      # before anything sets it: what torch picks on its own

import childtuning.train  # noqa: E402
from childtuning.config import compose, validate  # noqa: E402
from childtuning.threads import usable_cores  # noqa: E402


def spin() -> None:
    while True:
        pass


def one_run(threads: int, args, workdir: str) -> dict:
    cfg = validate(compose(
        f"model={args.model}", "task=rte", "method=vanilla", "seed=1", "trainer.epochs=1",
        f"task.max_train_samples={args.samples}", f"impl.num_threads={threads}", "impl.device=cpu",
        "impl.progress_bar=false", f"paths.results={workdir}/results", f"paths.cache={workdir}/cache",
        "experiment=bench", "force=true"))
    started = time.perf_counter()
    record = childtuning.train.run(cfg)
    return {"train_s": record["train_seconds"], "wall_s": time.perf_counter() - started,
            "threads": record["device"]["threads"], "status": record["status"]}


def measure(settings: dict[str, int], args, workdir: str) -> dict:
    names = list(settings)
    runs = {name: [] for name in names}
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runs[name].append(one_run(settings[name], args, workdir))
    best = {name: min(rs, key=lambda x: x["train_s"]) for name, rs in runs.items()}
    one = best["one"]["train_s"]
    return {"train_s": {k: round(v["train_s"], 2) for k, v in best.items()},
            "wall_s": {k: round(v["wall_s"], 2) for k, v in best.items()},
            "train_s_each_repeat": {k: [round(x["train_s"], 2) for x in rs] for k, rs in runs.items()},
            "ratio_to_one_thread": {k: round(v["train_s"] / one, 3) for k, v in best.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--samples", type=int, default=256, help="RTE training examples (task.max_train_samples)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="spinning processes, one measurement per value")
    args = ap.parse_args()
    usable, why = usable_cores()
    settings = {"torch_default": TORCH_DEFAULT, "one": 1, "usable_cores": usable}
    result = {"model": args.model, "task": "rte", "samples": args.samples, "epochs": 1, "repeats": args.repeats,
              "threads": settings, "usable_cores_from": why, "cpu_count": os.cpu_count(),
              "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "torch": torch.__version__,
              "timed": "fastest of the repeats; train_s = the record's train_seconds (steps + dev evaluation)"}
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as work:
        one_run(1, args, work)                        # warm the caches (tokenized data, model files)
        for busy in args.busy:
            spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(busy)]
            for p in spinners:
                p.start()
            try:
                result[f"busy_{busy}"] = measure(settings, args, work)
            finally:
                for p in spinners:
                    p.terminate()
                    p.join()
            print(f"[busy {busy}] {result[f'busy_{busy}']}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
