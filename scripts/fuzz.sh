#!/usr/bin/env bash
# Fuzzes csslm's file readers with libFuzzer (issue 9). The fuzz binary is built here with swiftc
# -sanitize=fuzzer,address from Fuzz/*.swift and the CSSLM sources the readers need (no BLAS, no
# MPI), outside SwiftPM, so `swift build` never builds or waits for it. It is built with -O, not
# the package's -Ounchecked, so bounds and overflow checks stay on and show up as findings.
#
# Usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]   fuzz one target
#        scripts/fuzz.sh --all SECONDS                          every target, one after another
#        scripts/fuzz.sh TARGET --repro FILE...                 run saved inputs once
#        scripts/fuzz.sh --list                                 the targets
# Seeds: Tests/Fuzz/TARGET/ (committed). New corpus entries: fuzz-out/corpus/TARGET/; crashing
# inputs: fuzz-out/crashes/TARGET/ (both git-ignored). A crash becomes a regression case in
# Tests/CSSLMTests/FuzzRegressionTests.swift. docs/limits.md: the limits the readers enforce.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

OUT=fuzz-out
BIN=$OUT/csslm-fuzz
TARGETS=(safetensors model_config vocab tokenizer_config tokenizer jsonl csv json_list labels corpus train_config manifest training_state)
SOURCES=(
  Sources/CSSLM/CSSLMError.swift Sources/CSSLM/InputLimits.swift
  Sources/CSSLM/Tensor/Random.swift Sources/CSSLM/Tensor/FloatBuffer.swift
  Sources/CSSLM/Model/Safetensors.swift Sources/CSSLM/Model/ParameterSet.swift Sources/CSSLM/Model/BertConfig.swift
  Sources/CSSLM/Text/*.swift Sources/CSSLM/Data/*.swift Sources/CSSLM/Training/TrainConfig*.swift Sources/CSSLM/NumericRanges.swift
  Sources/CSSLM/CSSLM.swift Sources/CSSLM/Support/SHA256.swift Sources/CSSLM/Support/TextLines.swift Sources/CSSLM/Support/AtomicFile.swift
  Sources/CSSLM/Support/StableHash.swift Sources/CSSLM/Model/TokenBatch.swift Sources/CSSLM/Training/CheckpointManifest.swift
  Sources/CSSLM/Training/TrainingState.swift Sources/CSSLM/Training/AdamW.swift Sources/CSSLM/Tensor/VectorMath.swift
  Sources/CSSLM/Distributed/GlobalSampler.swift
  Fuzz/*.swift
)

die() { printf '[fuzz] error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '7,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

build() {
  mkdir -p "$OUT"
  if [[ -x "$BIN" ]] && [[ -z $(find "${SOURCES[@]}" "$0" -newer "$BIN" 2>/dev/null | head -n 1) ]]; then
    return
  fi
  ls "$(dirname "$(command -v swiftc)")"/../lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 \
    || die "swiftc's toolchain has no libclang_rt.fuzzer (libFuzzer); use a swift.org toolchain for Linux"
  echo "[fuzz] building $BIN (swiftc -sanitize=fuzzer,address -O)" >&2
  # The ASan-instrumented link makes gold warn once per ASan helper symbol: use lld, quietly.
  swiftc -sanitize=fuzzer,address -O -gline-tables-only -parse-as-library -module-name CSSLMFuzz \
    -use-ld=lld "${SOURCES[@]}" -o "$BIN.tmp"
  mv "$BIN.tmp" "$BIN"
}

known_target() {
  local t
  for t in "${TARGETS[@]}"; do [[ "$t" == "$1" ]] && return 0; done
  die "unknown target '$1'; targets: ${TARGETS[*]}"
}

# run_target TARGET SECONDS [flags...]: fuzzes, prints "TARGET: N executions, ok|FAILED", returns
# libFuzzer's status. The full log is fuzz-out/logs/TARGET.log.
run_target() {
  local target=$1 seconds=$2; shift 2
  mkdir -p "$OUT/corpus/$target" "$OUT/crashes/$target" "$OUT/logs"
  local log="$OUT/logs/$target.log" status=0
  # rss/malloc limits: an input that makes a reader allocate ~1 GiB trusted a size it declared.
  # The Swift runtime's own backtracer would fight ASan over a trap: let libFuzzer report it.
  SWIFT_BACKTRACE=enable=no LSAN_OPTIONS=suppressions=Fuzz/lsan.supp:print_suppressions=0 \
  CSSLM_FUZZ_TARGET=$target "$BIN" "$OUT/corpus/$target" "Tests/Fuzz/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -dict=Fuzz/fuzz.dict -artifact_prefix="$OUT/crashes/$target/" -print_final_stats=1 "$@" >"$log" 2>&1 || status=$?
  local runs
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if ((status == 0)); then
    echo "[fuzz] $target: ${runs:-?} executions in ${seconds} s, no crash, hang or leak"
  else
    echo "[fuzz] $target: FAILED after ${runs:-?} executions (status $status); log: $log" >&2
    grep -E "^(==[0-9]+==ERROR|SUMMARY|fuzz check failed|Fatal error|.*Fatal error|artifact_prefix|Test unit written)" "$log" \
      | head -n 8 >&2 || true
  fi
  return "$status"
}

(($# >= 1)) || usage
case "$1" in
  --list) printf '%s\n' "${TARGETS[@]}"; exit 0 ;;
  --all)
    (($# == 2)) || usage
    build
    failed=()
    for t in "${TARGETS[@]}"; do run_target "$t" "$2" || failed+=("$t"); done
    ((${#failed[@]} == 0)) || die "targets with findings: ${failed[*]}"
    ;;
  -*) usage ;;
  *)
    (($# >= 2)) || usage
    target=$1; known_target "$target"; shift
    build
    if [[ "$1" == --repro ]]; then
      shift
      (($# >= 1)) || usage
      SWIFT_BACKTRACE=enable=no LSAN_OPTIONS=suppressions=Fuzz/lsan.supp:print_suppressions=0 \
        CSSLM_FUZZ_TARGET=$target "$BIN" "$@"
    else
      [[ "$1" =~ ^[0-9]+$ ]] || usage
      seconds=$1; shift
      run_target "$target" "$seconds" "$@"
    fi
    ;;
esac
