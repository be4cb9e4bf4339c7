#!/usr/bin/env bash
# Chaos: a tiny csslm run at W = 1 and 2 and a tiny experiment, killed (SIGKILL) or stopped
# (SIGSTOP) at random moments on a random rank, resumed until they finish; the final results must
# equal the uninterrupted ones and no kept run may be incomplete (Tests/CSSLMTests/ChaosTests.swift).
# Usage: scripts/chaos.sh [SECONDS] [SEED]   (default 300 s; scripts/test.sh runs it with 40 s)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export CSSLM_CHAOS_SECONDS=${1:-${CSSLM_CHAOS_SECONDS:-300}}
[[ $# -ge 2 ]] && export CSSLM_CHAOS_SEED=$2
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
echo "[chaos] budget ${CSSLM_CHAOS_SECONDS} s${CSSLM_CHAOS_SEED:+, seed $CSSLM_CHAOS_SEED}"
swift test "${SWIFT_FLAGS[@]}" -Xswiftc -enable-testing --filter ChaosTests
