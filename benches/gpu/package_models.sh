#!/usr/bin/env bash
# Packages the model tier's models ($EMILY_CACHE/models, from scripts/models.sh: MiniLM's
# safetensors and SmolLM2's GGUF, ~180 MB that do not compress) for the offline NVIDIA
# machine: one tar split into parts that each fit the device tool's 64 MiB per call beside
# the working tree, DEST/m1, DEST/m2, ..., with the whole tar's sha256 in DEST/m1.
# device_run.sh unpacks them into $EMILY_CACHE/models once every part has been carried
# (one call each, while the machine is warm; see benches/gpu/README.md).
#
#   benches/gpu/package_models.sh [DEST]      # DEST defaults to .device in the repository
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
DEST="${1:-$root/.device}"
CACHE="${EMILY_CACHE:-$HOME/.cache/emily}"
SPLIT_MIB="${EMILY_MODELS_SPLIT_MIB:-46}"
[ -d "$CACHE/models" ] || { echo "[package] no $CACHE/models: run scripts/models.sh first" >&2; exit 2; }
rm -rf "$DEST"/m[0-9]*
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
tar -C "$CACHE" -cf "$stage/models.tar" models
split -b "${SPLIT_MIB}M" -d -a 2 "$stage/models.tar" "$stage/models.tar."
i=0
for part in "$stage"/models.tar.[0-9]*; do
  i=$((i + 1))
  mkdir -p "$DEST/m$i"
  mv "$part" "$DEST/m$i/"
done
[ "$i" -le 9 ] || { echo "[package] $i parts: device_run.sh orders at most 9" >&2; exit 2; }
sha256sum "$stage/models.tar" | awk '{print $1}' >"$DEST/m1/models.tar.sha256"
du -sh "$DEST"/m[0-9]* >&2
echo "[package] done: carry $(cd "$DEST" && ls -d m[0-9]* | tr '\n' ' ')one call each, before device_run.sh" >&2
