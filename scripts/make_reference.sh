#!/usr/bin/env bash
# Dev time only: regenerates the committed reference fixtures with PyTorch + HF transformers in a
# venv (.venv-ref, git-ignored). CI never runs this; it uses the committed fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${VENV:-.venv-ref}
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
  # The CPU wheel (no CUDA): the pinned local version is what this machine kind carries.
  "$VENV/bin/pip" install -q "torch==2.13.0+cpu" transformers tokenizers safetensors numpy scikit-learn
fi
# make_probe_reference.py needs scikit-learn (a venv made before it existed lacks it).
"$VENV/bin/python" -c "import sklearn" 2>/dev/null || "$VENV/bin/pip" install -q scikit-learn
export HF_HUB_OFFLINE=1
for script in scripts/make_reference*.py scripts/make_*_reference.py; do
  [[ -f "$script" ]] || continue
  echo "[reference] $script"
  "$VENV/bin/python" "$script"
done
