"""Would keeping the pretrained weights in memory, once per process, make a sweep's later runs start faster?

Issue 12 asks that a process running several runs (a sweep on one worker) read the pretrained
weights once. This measures the two ways a later run can get its model, in one process, taking
turns in a rotating order:

- `from_disk`: what every run does today, `AutoModelForSequenceClassification.from_pretrained(folder)`,
  after a first load, so the file is in the operating system's page cache (a worker's second run);
- `from_memory`: the process keeps the loaded state dict and builds the model from it
  (`from_pretrained(None, config=..., state_dict=...)`). The tensors must be cloned for each run:
  transformers makes the given tensors the model's parameters (the `shared_parameters` figure),
  so a run's training would otherwise write into the copy the next run starts from.

Both are checked to give bit-identical weights and to leave the global random stream in the same
state (the new head is drawn from it). The first load of the process (imports included) is
reported apart. `--shape bert-large` saves a randomly initialised BERT-large (335M weights) to a
temporary folder and measures that instead (about 1.3 GB written to the temporary directory).

    python benchmarks/pretrained_load.py [--rounds 10] [--threads 2] [--shape minilm|bert-large]
"""
import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig, logging  # noqa: E402

from childtuning.models import minilm_path  # noqa: E402

BERT_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)


def load_from_disk(folder):
    return AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)


def load_from_memory(folder, model_class, state):
    config = AutoConfig.from_pretrained(folder, num_labels=2)
    return model_class.from_pretrained(None, config=config, state_dict={k: v.clone() for k, v in state.items()})


def same_model_and_stream(folder, model_class, state) -> bool:
    """Same seed in, bit-identical weights and the same next random number out."""
    torch.manual_seed(11)
    a, after_a = load_from_disk(folder), torch.rand(4)
    torch.manual_seed(11)
    b, after_b = load_from_memory(folder, model_class, state), torch.rand(4)
    sa, sb = a.state_dict(), b.state_dict()
    return torch.equal(after_a, after_b) and sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shape", choices=("minilm", "bert-large"), default="minilm")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.set_verbosity_error()
    logging.disable_progress_bar()

    with tempfile.TemporaryDirectory() as tmp:
        if args.shape == "minilm":
            folder = minilm_path()
        else:
            folder = tmp
            BertConfig(**BERT_LARGE).save_pretrained(tmp)
            AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(tmp)).bert.save_pretrained(tmp)
        start = time.perf_counter()
        first = load_from_disk(folder)
        first_s = time.perf_counter() - start
        model_class = type(first)
        state = load_file(os.path.join(folder, "model.safetensors"))
        held = model_class.from_pretrained(None, config=AutoConfig.from_pretrained(folder, num_labels=2), state_dict=dict(state))
        given = {v.data_ptr() for v in state.values()}
        shared = sum(p.data_ptr() in given for p in held.parameters())
        n_params = sum(1 for _ in held.parameters())
        del held, first
        exact = same_model_and_stream(folder, model_class, state)

        ways = {"from_disk": lambda: load_from_disk(folder),
                "from_memory": lambda: load_from_memory(folder, model_class, state)}
        names = list(ways)
        seconds = {n: [] for n in names}
        for r in range(args.rounds):
            for n in names[r % 2:] + names[:r % 2]:
                start = time.perf_counter()
                ways[n]()
                seconds[n].append(time.perf_counter() - start)
        ratios = [m / d for m, d in zip(seconds["from_memory"], seconds["from_disk"])]
        weights = sum(v.numel() for v in state.values())
        file_mb = os.path.getsize(os.path.join(folder, "model.safetensors")) / 1e6

    print(json.dumps({
        "shape": args.shape, "weights": weights, "file_mb": round(file_mb, 1),
        "first_load_s": round(first_s, 3),
        "median_s": {n: round(statistics.median(s), 4) for n, s in seconds.items()},
        "ratio_memory_to_disk": round(statistics.median(ratios), 3),
        "exact": exact, "shared_parameters": f"{shared} of {n_params}",
        "rounds": args.rounds, "threads": args.threads, "torch": torch.__version__,
        "timed": "one model built per call, page cache warm; the memory copy cloned per call"}))


if __name__ == "__main__":
    main()
