#!/usr/bin/env bash
# Benchmark (not a test): one training step (fwd + bwd + AdamW) of the MiniLM shape at batch 16/32,
# sequence 64/128, with tokens/s, achieved GFLOP/s and, in the same run, the machine's sgemm
# GFLOP/s at the same GEMM shapes. Run it on an idle machine.
# Usage: scripts/bench.sh [csslm-bench options, e.g. --model bert-base --inference]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
swift build "${SWIFT_FLAGS[@]}" --product csslm-bench >/dev/null
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$(nproc)}
.build/release/csslm-bench "$@"
