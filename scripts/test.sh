#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), builds, runs every test.
# Usage: scripts/test.sh [--filter REGEX]   (extra arguments go to `swift test`)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
echo "[test] building (release, -target-cpu native)"
swift build "${SWIFT_FLAGS[@]}"
# One BLAS thread per process: tests spawn MPI ranks on a 2-core machine.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
echo "[test] swift test"
swift test "${SWIFT_FLAGS[@]}" -Xswiftc -enable-testing "$@"
if [[ $# -eq 0 ]]; then
  echo "[test] fuzzing every reader (60 s each; scripts/fuzz.sh TARGET SECONDS for longer runs)"
  bash scripts/fuzz.sh --all "${CSSLM_FUZZ_SECONDS:-60}"
fi
