#!/usr/bin/env bash
# Tokenizer throughput on one core: `csslm tokenize` over the first MB megabytes (default 4) of a
# corpus file, minus the start-up time (loading the vocabulary and tokenizer.json), in MB/s and
# lines/s. A few seconds at most. Build first:
#   swift build -c release -Xswiftc -target-cpu -Xswiftc native
# Usage: scripts/bench_tokenizer.sh [TEXT_FILE] [MB]
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-assets/corpus/general.txt}
mb=${2:-4}
bin=.build/release/csslm
model=assets/models/all-MiniLM-L6-v2
[[ -x $bin ]] || { echo "no $bin: build it first (see the top of this script)" >&2; exit 1; }
[[ -f $src ]] || { echo "no $src: run scripts/setup.sh, or pass a text file" >&2; exit 1; }
sample=$(mktemp); trap 'rm -f "$sample"' EXIT
head -c $((mb * 1000000)) "$src" | sed '$d' > "$sample"   # whole lines only
bytes=$(wc -c < "$sample"); lines=$(wc -l < "$sample")
cpu() { /usr/bin/time -f "%U %S" "$@" 2>&1 >/dev/null | tail -n 1 | awk '{print $1 + $2}'; }
t0=$(cpu $bin tokenize --model $model --input /dev/null)
t1=$(cpu $bin tokenize --model $model --input "$sample")
awk -v b="$bytes" -v l="$lines" -v t0="$t0" -v t1="$t1" 'BEGIN {
  t = t1 - t0; if (t <= 0) t = 0.001
  printf "tokenize: %.1f MB in %.2f s CPU (start-up %.2f s excluded): %.1f MB/s, %.0f lines/s\n", b / 1e6, t, t0, b / 1e6 / t, l / t }'
