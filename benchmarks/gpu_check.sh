#!/usr/bin/env bash
# A short GPU check (about 5 minutes on one H100/H200), for machines where the CPU tests cannot
# reach the CUDA paths:
#   1. the runner on CUDA with each method, fp32 and bf16 autocast (tiny RoBERTa, BPE tokenizer
#      trained on the task text, 256 RTE examples, 3 epochs): every run must end with status ok
#      and a record; Child-Tuning_F twice in fp32 to see whether a GPU run repeats exactly;
#   2. benchmarks/child_tuning_overhead.py on a randomly initialised BERT-large-shaped model
#      (335M parameters, nothing downloaded): the step overhead of F, D and the official F mask.
# Needs GLUE_DIR with RTE in it. Writes records and logs under $OUT (default /tmp/gpu_check).
#   GLUE_DIR=../shared/data/glue bash benchmarks/gpu_check.sh
set -euo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}     # DEVICE=cpu STEPS=0: a dry run of this script without a GPU
STEPS=${STEPS:-20}
nvidia-smi -L || true
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

run() {  # run <label> <overrides...>
  local label=$1; shift
  "$PY" -m childtuning.train model=tiny_roberta task=rte task.max_train_samples=256 seed=1 \
    impl.device=$DEVICE impl.progress_bar=false logger=none experiment=gpu_check \
    "paths.results=$OUT/results_$label" "$@" 2>&1 | grep -E "^tiny|rror" || true
}
for precision in fp32 bf16; do
  for method in vanilla child_tuning_f child_tuning_d; do
    run "$precision" method=$method impl.precision=$precision
  done
done
run repeat method=child_tuning_f impl.precision=fp32
"$PY" - "$OUT" <<'EOF'
import glob, json, sys
out = sys.argv[1]
recs = {p: json.load(open(p)) for p in sorted(glob.glob(f"{out}/results_*/gpu_check/runs/*.json"))}
for p, r in recs.items():
    print(p.split("/")[-4], r["method"], r["device"]["name"], r["device"]["precision"], r["status"],
          r["main_metric"]["name"], round(r["main_metric"]["value"], 2), f'{r["train_seconds"]:.1f}s')
bad = [p for p, r in recs.items() if r["status"] != "ok" and r["status"] != "degenerate"]
print("records:", len(recs), "not ok/degenerate:", bad)
f = [r for p, r in recs.items() if r["method"] == "child_tuning_f" and r["device"]["precision"] == "fp32"]
if len(f) == 2:
    print("CT-F fp32 repeat identical metrics:", f[0]["metrics"] == f[1]["metrics"],
          "history identical:", f[0]["history"] == f[1]["history"])
EOF
[ "$STEPS" -gt 0 ] && "$PY" benchmarks/child_tuning_overhead.py --device "$DEVICE" --model tiny_roberta --steps "$STEPS" \
  --set model.config.hidden_size=1024 model.config.num_hidden_layers=24 \
        model.config.num_attention_heads=16 model.config.intermediate_size=4096 \
        model.config.max_position_embeddings=514 2>&1 | tail -5
