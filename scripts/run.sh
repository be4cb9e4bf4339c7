#!/usr/bin/env bash
# The README's run command: set-up, build, then the default job — Rotten Tomatoes, 16 labelled
# examples per class, MiniLM-L6, shortened epochs (configs/demo-rotten-tomatoes.json) — trained
# with `finetune` and with `csslm`, and their test accuracy side by side.
#   scripts/run.sh              one process
#   RANKS=2 scripts/run.sh      the same job on 2 MPI ranks (same result up to float rounding)
# Extra arguments go to every `csslm train` (e.g. --sample-seed 3 --epochs 10).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
swift build "${SWIFT_FLAGS[@]}" --product csslm
RANKS=${RANKS:-1}
CONFIG=configs/demo-rotten-tomatoes.json
OUT=${OUT:-runs/demo}
if [[ "$RANKS" -gt 1 ]]; then
  LAUNCH=(bash scripts/launch.sh --np "$RANKS" --oversubscribe --)
else
  export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$(nproc)}
  LAUNCH=()
fi
for method in finetune csslm; do
  echo "=== $method ==="
  "${LAUNCH[@]}" .build/release/csslm train --config "$CONFIG" --method "$method" --output "$OUT/$method" "$@"
done
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
print("\n| method | best epoch | dev acc | test acc | test macro-F1 | seconds |")
print("|---|---:|---:|---:|---:|---:|")
for m in ("finetune", "csslm"):
    r = json.load(open(os.path.join(out, m, "result.json")))
    print(f"| {r['method']} | {r['bestEpoch']} | {r['dev']['accuracy']:.4f} | {r['test']['accuracy']:.4f} | {r['test']['macroF1']:.4f} | {r['seconds']:.0f} |")
print(f"\nRun folders: {out}/finetune, {out}/csslm (metrics.jsonl, fewshot_sample.jsonl, retrieved.jsonl, model/)")
PY
