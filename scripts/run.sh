#!/usr/bin/env bash
# The README's run command: set-up, build, then the default job — Rotten Tomatoes, 16 labelled
# examples per class, MiniLM-L6, a short schedule and a 3,000-sentence pool
# (configs/demo-rotten-tomatoes.json) — the frozen-feature `probe`, `finetune` and `csslm` (query
# retriever on the pretrained encoder), and their accuracy side by side. About 10 minutes on 2 cores.
#   scripts/run.sh              one process
#   RANKS=2 scripts/run.sh      the same job on 2 MPI ranks (same result up to float rounding)
# Extra arguments go to every `csslm train` (e.g. --sample-seed 3 --epochs 10).
# A rerun starts afresh: each earlier run folder is moved to <method>.old-<time> (--overwrite),
# never deleted; OUT=runs/other scripts/run.sh writes elsewhere.
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
for method in probe finetune csslm; do
  echo "=== $method ==="
  "${LAUNCH[@]}" .build/release/csslm train --config "$CONFIG" --method "$method" --output "$OUT/$method" --overwrite "$@"
done
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
print("\n| method | best step | dev acc | test acc | test macro-F1 | pseudo-label precision | seconds |")
print("|---|---:|---:|---:|---:|---:|---:|")
for m in ("probe", "finetune", "csslm"):
    r = json.load(open(os.path.join(out, m, "result.json")))
    q = r.get("retrieval") or {}
    precision = f"{q['correct'] / q['inDomain']:.3f} of {q['inDomain']}" if q.get("inDomain") else "–"
    print(f"| {r['method']} | {r.get('bestStep', r['bestEpoch'])} | {r['dev']['accuracy']:.4f} | {r['test']['accuracy']:.4f} | {r['test']['macroF1']:.4f} | {precision} | {r['seconds']:.0f} |")
print(f"\nRun folders: {out}/probe, {out}/finetune, {out}/csslm (metrics.jsonl, fewshot_sample.jsonl, retrieved.jsonl, report.html, model/)")
PY
