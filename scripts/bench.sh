#!/usr/bin/env bash
# Benchmark (not a test), one invocation, same machine, same thread count for both sides:
#  - our train step (fwd + bwd + clip + AdamW, dropout 0.1) and inference (no grad) against
#    PyTorch's (HF BertModel + the same classifier head, scripts/bench_torch.py) for MiniLM-L6
#    (batch 16/32 × seq 64/128) and BERT-base (batch 16/32 × seq 128; all four with BENCH_BERT_FULL=1),
#    with tokens/s, GFLOP/s, the sgemm ceiling at the same GEMM shapes and each side's peak RSS
#    (every configuration runs in its own process); ours computes the last layer for the [CLS] and
#    [SEP] rows only (what the head reads), plus one row with every token computed;
#  - scaling: the MiniLM b32 s128 step at 1 rank × 1 thread and 2 ranks × 1 thread (mpirun), with
#    the gradient allreduce timed apart;
#  - the machine (CPU model and flags, the OpenBLAS core and how csslm chose it, the fp32 peak) and,
#    beside OpenBLAS's sgemm ceiling, PyTorch's torch.mm at the same shapes;
#  - other GEMM libraries Debian ships, when installed (BLIS: libblis-dev, oneDNN: libdnnl-dev),
#    against OpenBLAS at the train step's shapes (scripts/gemm_bench.c, built here).
# PyTorch comes from a venv the script creates (.venv-bench: torch 2.13.0+cpu, transformers); if pip
# cannot provide it, the tables carry our figures only. BENCH_PYTHON=/path/to/python uses another
# interpreter that has torch and transformers. BENCH_THREADS overrides the thread count (nproc).
# Takes ~10 minutes on 2 cores; run it on an otherwise idle machine (the load average is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
start=$(date +%s)
threads=${BENCH_THREADS:-$(nproc)}
echo "csslm bench: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) logical CPUs, $threads threads per side, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
if ! build_log=$(swift build "${SWIFT_FLAGS[@]}" --product csslm-bench 2>&1); then echo "$build_log"; exit 1; fi
bench=.build/release/csslm-bench
results=$(mktemp /tmp/csslm-bench.XXXXXX.jsonl)
"$bench" info --threads "$threads" >>"$results"

python=${BENCH_PYTHON:-}
if [[ -z "$python" ]]; then
  if [[ ! -x .venv-bench/bin/python ]] || ! .venv-bench/bin/python -c "import torch, transformers" 2>/dev/null; then
    echo "Creating .venv-bench with torch 2.13.0+cpu and transformers (once)..."
    if python3 -m venv .venv-bench >/dev/null 2>&1 \
       && .venv-bench/bin/pip install --quiet "torch==2.13.0+cpu" transformers >/tmp/csslm-bench-pip.log 2>&1; then
      :
    else
      echo "PyTorch unavailable: could not create the venv or pip-install torch==2.13.0+cpu (log: /tmp/csslm-bench-pip.log); printing our figures only."
    fi
  fi
  [[ -x .venv-bench/bin/python ]] && .venv-bench/bin/python -c "import torch, transformers" 2>/dev/null && python=.venv-bench/bin/python
fi

config() {  # model batch seq repeats
  echo "  $1 batch $2 seq $3 ..." >&2
  OPENBLAS_NUM_THREADS=$threads "$bench" run --model "$1" --batch "$2" --seq "$3" --repeats "$4" >>"$results"
  if [[ -n "$python" ]]; then
    read -ra inference_shapes <<<"$("$bench" shapes --model "$1" --batch "$2" --seq "$3" --mode inference)"
    read -ra train_shapes <<<"$("$bench" shapes --model "$1" --batch "$2" --seq "$3" --mode train)"
    OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads \
      "$python" scripts/bench_torch.py --model "$1" --batch "$2" --seq "$3" --repeats "$4" --threads "$threads" \
        --gemm-inference "${inference_shapes[@]}" --gemm-train "${train_shapes[@]}" >>"$results" \
      || echo "  (PyTorch run failed for $1 $2 $3)" >&2
  fi
}
for b in 16 32; do for t in 64 128; do config minilm $b $t 3; done; done
echo "  minilm batch 32 seq 128, ours with every row of the last layer ..." >&2
OPENBLAS_NUM_THREADS=$threads "$bench" run --model minilm --batch 32 --seq 128 --repeats 3 --last-layer all >>"$results"
bert_seqs="128"; [[ -n "${BENCH_BERT_FULL:-}" ]] && bert_seqs="64 128"
for b in 16 32; do for t in $bert_seqs; do config bert-base $b $t 1; done; done

echo "  scaling: 1 rank × 1 thread, 2 ranks × 1 thread ..." >&2
OPENBLAS_NUM_THREADS=1 "$bench" scale --model minilm --batch 32 --seq 128 --repeats 3 >>"$results"
OPENBLAS_NUM_THREADS=1 mpirun -np 2 --oversubscribe --bind-to none -x OPENBLAS_NUM_THREADS \
  "$bench" scale --model minilm --batch 32 --seq 128 --repeats 3 >>"$results"

# Other GEMM libraries at the train step's shapes, each through its own threads.
echo "  GEMM libraries: OpenBLAS, BLIS, oneDNN (those installed) ..." >&2
gemm_dir=.build/gemm-bench; mkdir -p "$gemm_dir"
gemm_libs=(openblas)
cc -O2 -o "$gemm_dir/openblas" scripts/gemm_bench.c $(pkg-config --cflags --libs openblas) 2>/dev/null || gemm_libs=()
if ldconfig -p | grep -q 'libblis\.so ' && cc -O2 -DUSE_BLIS -o "$gemm_dir/blis" scripts/gemm_bench.c $(pkg-config --cflags openblas) -lblis 2>/dev/null; then
  gemm_libs+=(blis)
else echo "  (BLIS not installed: apt install libblis-dev)" >&2; fi
if [[ -f /usr/include/dnnl.h ]] && cc -O2 -DUSE_DNNL -o "$gemm_dir/onednn" scripts/gemm_bench.c -ldnnl 2>/dev/null; then
  gemm_libs+=(onednn)
else echo "  (oneDNN not installed: apt install libdnnl-dev)" >&2; fi
for model in minilm bert-base; do
  read -ra shapes <<<"$("$bench" shapes --model $model --batch 32 --seq 128 --mode train)"
  for t in $(printf '%s\n' 1 "$threads" | sort -un); do
    for lib in "${gemm_libs[@]}"; do
      OPENBLAS_NUM_THREADS=$t BLIS_NUM_THREADS=$t OMP_NUM_THREADS=$t "$gemm_dir/$lib" "$model b32 s128 train" "$t" 3 "${shapes[@]}" >>"$results" \
        || echo "  ($lib failed)" >&2
    done
  done
done

echo
"$bench" report "$results"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); total $(( $(date +%s) - start )) s; raw results: $results"
