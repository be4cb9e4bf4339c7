#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), builds, runs every test (the
# bad-input table and the chaos test among them, with bounded time: CSSLM_CHAOS_SECONDS=40).
# Usage: scripts/test.sh [--filter REGEX]   (extra arguments go to `swift test`)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
echo "[test] building (release, -target-cpu native)"
swift build "${SWIFT_FLAGS[@]}"
# One BLAS thread per process: tests spawn MPI ranks on a 2-core machine.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export CSSLM_CHAOS_SECONDS=${CSSLM_CHAOS_SECONDS:-40}
echo "[test] swift test"
swift test "${SWIFT_FLAGS[@]}" -Xswiftc -enable-testing "$@"
if [[ $# -eq 0 ]]; then
  # The full `swift test` above ran ChaosTests and BadInputCLITests with their default, bounded
  # budgets (CSSLM_CHAOS_SECONDS, 40 s); scripts/chaos.sh SECONDS runs the chaos part for longer.
  echo "[test] fuzzing every reader (60 s each; scripts/fuzz.sh TARGET SECONDS for longer runs)"
  bash scripts/fuzz.sh --all "${CSSLM_FUZZ_SECONDS:-60}"
fi
