#!/usr/bin/env bash
# Packages what an offline NVIDIA machine needs to run Emily's GPU tests and benchmarks
# (benches/gpu/device_run.sh there), from package registries only:
#   * MLX 0.32.4 with its CUDA backend: the PyPI wheel mlx-cuda-13 (pip download);
#   * Erlang/OTP 25 and OpenBLAS: Debian 12 .debs (apt-get download), unpacked there with
#     dpkg -x into a folder of their own, never into /;
#   * Elixir, built here by scripts/setup.sh;
#   * this project, compiled here (MIX_ENV=test), with priv/emily_nif.so built against the
#     CUDA wheel's libmlx (CARGO_TARGET_DIR=target/cuda), and the path dependencies it was
#     compiled with when Hex is absent (EMILY_DEPS_PATH or ../shared/deps; the Nx and
#     model tiers).
# The NVIDIA libraries libmlx needs (cuBLAS, cuDNN, cuFFT, cuSOLVER, NCCL, NVRTC) are not
# packaged: the target machine has them (PyTorch cu130's site-packages/nvidia), and the
# driver's libcuda.so.1.
#
#   benches/gpu/package.sh [DEST]      # DEST defaults to .device in the repository
#
# DEST/p1, DEST/p2 and DEST/p3 each fit the device tool's 64 MiB per call beside the
# working tree (libmlx alone is ~66 MiB compressed, so it is split across p1 and p2; p3
# holds the system parts: Erlang's .debs, Elixir, the rest of the MLX wheel). See
# benches/gpu/README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=scripts/versions.sh
source "$root/scripts/versions.sh"
eval "$("$root/scripts/setup.sh" --env)"

DEST="${1:-$root/.device}"
CACHE="${EMILY_CACHE:-$HOME/.cache/emily}"
CUDA_MLX="$CACHE/mlx-cuda-13-$MLX_VERSION"
SPLIT_MIB="${EMILY_SPLIT_MIB:-52}"
log() { echo "[package] $*" >&2; }

# --- MLX with the CUDA backend, from PyPI -------------------------------------------------
if [ ! -f "$CUDA_MLX/mlx/lib/libmlx.so" ]; then
  log "fetching mlx-cuda-13==$MLX_VERSION"
  work="$(mktemp -d)"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_35_x86_64 -d "$work" "mlx-cuda-13==$MLX_VERSION"
  mkdir -p "$work/x"
  unzip -q "$work"/mlx_cuda_13-*.whl -d "$work/x"
  rm -rf "$CUDA_MLX"
  mkdir -p "$CUDA_MLX"
  # Keep the wheel's layout: libmlx's RPATH is $ORIGIN/../../nvidia/*/lib and
  # $ORIGIN/../../mlx_cuda_13.libs, and MLX finds CCCL for NVRTC at ../include/cccl.
  cp -a "$work/x/mlx" "$work/x/mlx_cuda_13.libs" "$CUDA_MLX/"
  rm -rf "$work"
fi

# --- Debian packages: Erlang/OTP 25 (what Mix and ExUnit use) and OpenBLAS -----------------
DEBS="$CACHE/gpu-debs"
if [ ! -f "$DEBS/.done" ] || ! ls "$DEBS"/libsleef3_*.deb >/dev/null 2>&1; then
  log "apt-get download Erlang/OTP and OpenBLAS"
  rm -rf "$DEBS" && mkdir -p "$DEBS"
  (cd "$DEBS" && apt-get download -q erlang-base erlang-crypto erlang-asn1 erlang-public-key \
    erlang-ssl erlang-inets erlang-syntax-tools erlang-tools erlang-runtime-tools \
    erlang-parsetools libopenblas0-pthread libgfortran5 libquadmath0 libsleef3 2>&1 | grep -v unsandboxed >&2) || true
  ls "$DEBS"/erlang-base_*.deb >/dev/null
  touch "$DEBS/.done"
fi

# --- Emily: the NIF against CUDA MLX, the Elixir side compiled for tests -------------------
log "building the NIF against $CUDA_MLX/mlx (CARGO_TARGET_DIR=target/cuda)"
(cd "$root" && EMILY_MLX_DIR="$CUDA_MLX/mlx" CARGO_TARGET_DIR="$root/target/cuda" \
  cargo build --release -p emily_nif >&2)
log "MIX_ENV=test mix compile --force (the Elixir side; the local NIF is the CPU one; forced: modules guarded on Nx differ with and without it)"
(cd "$root" && MIX_ENV=test mix compile --force >&2)

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
rm -rf "$DEST/p1" "$DEST/p2" "$DEST/p3"
mkdir -p "$DEST/p1" "$DEST/p2" "$DEST/p3"

# libmlx, stripped of its symbol table (146 -> 119 MB) and xz'd, in two parts.
log "compressing libmlx (xz -9e; a few minutes)"
mlxz="$CACHE/libmlx-cuda-13-$MLX_VERSION.so.stripped.xz"
if [ ! -f "$mlxz" ] || [ "$mlxz" -ot "$CUDA_MLX/mlx/lib/libmlx.so" ]; then
  cp "$CUDA_MLX/mlx/lib/libmlx.so" "$stage/libmlx.so"
  strip --strip-unneeded "$stage/libmlx.so"
  xz -T2 -9e -c "$stage/libmlx.so" >"$mlxz.tmp" && mv "$mlxz.tmp" "$mlxz"
  rm -f "$stage/libmlx.so"
fi
split -b "${SPLIT_MIB}M" -d -a 2 "$mlxz" "$stage/libmlx.so.xz."
mv "$stage/libmlx.so.xz.00" "$DEST/p1/"
mv "$stage"/libmlx.so.xz.* "$DEST/p2/"
sha256sum "$mlxz" | awk '{print $1}' >"$DEST/p2/libmlx.so.xz.sha256"

# The rest of the wheel (headers for NVRTC, the bundled reference BLAS/LAPACK), at the
# same absolute path as here, so the NIF's RUNPATH finds libmlx there.
log "packing the rest of MLX, Elixir, Erlang .debs, the app"
tar -C / -cJf "$DEST/p3/mlx-rest.tar.xz" --exclude="${CUDA_MLX#/}/mlx/lib/libmlx.so" \
  "${CUDA_MLX#/}"
tar -C / -cJf "$DEST/p3/elixir.tar.xz" "${CACHE#/}/elixir-$ELIXIR_VERSION/bin" \
  "${CACHE#/}/elixir-$ELIXIR_VERSION/lib" "${CACHE#/}/elixir-$ELIXIR_VERSION/VERSION"
mkdir -p "$DEST/p3/debs" && cp "$DEBS"/*.deb "$DEST/p3/debs/"

# The project at its absolute path here (Mix's manifests hold absolute paths), with the
# CUDA NIF in priv/ (newer than every source, so Mix does not try to rebuild it).
app="$stage/app"
mkdir -p "$app$root"
(cd "$root" && git ls-files -co --exclude-standard -z | grep -zv '^\.device/' |
  xargs -0 cp --parents -a -t "$app$root")
cp -a "$root/_build" "$app$root/" 2>/dev/null || true
rm -rf "$app$root/_build/dev"
mkdir -p "$app$root/priv"
cp "$root/target/cuda/release/libemily_nif.so" "$app$root/priv/emily_nif.so"
touch "$app$root/priv/emily_nif.so"
# The path dependencies the project was compiled with (mix.exs: EMILY_DEPS_PATH, else
# ../shared/deps beside it), at the same absolute path, for the Nx and model tiers.
deps_dir="$(cd "$root" && elixir -e 'Mix.start(); Code.require_file("mix.exs"); IO.write(Emily.MixProject.local_deps_path() || "")' 2>/dev/null || true)"
if [ -n "$deps_dir" ]; then
  mkdir -p "$app$deps_dir"
  (cd "$deps_dir/" && tar --exclude=.git --exclude=_build --exclude=deps --exclude=target -cf - .) |
    tar -C "$app$deps_dir" -xf -
  echo "export EMILY_DEPS_PATH=$deps_dir" >>"$DEST/p2/env.sh"
fi
tar -C "$app" -cJf "$DEST/p2/app.tar.xz" "${root#/}" ${deps_dir:+"${deps_dir#/}"}
cp "$here/device_run.sh" "$DEST/p2/"
# MLX's compiled CUDA kernels from an earlier device run (device_run.sh returns them as
# $OUT/ptx-cache.tar.xz; keep that file at DEST/ptx-cache.tar.xz): a fresh machine then
# loads them instead of compiling each with NVRTC.
ptx="${EMILY_PTX_CACHE:-$DEST/ptx-cache.tar.xz}"
if [ -f "$ptx" ]; then cp "$ptx" "$DEST/p2/ptx-cache.tar.xz"; log "MLX kernel cache: $(du -h "$ptx" | cut -f1)"; fi
echo "root=$root" >>"$DEST/p2/env.sh"
echo "cache=$CACHE" >>"$DEST/p2/env.sh"
echo "cuda_mlx=$CUDA_MLX" >>"$DEST/p2/env.sh"
echo "elixir_dir=$CACHE/elixir-$ELIXIR_VERSION" >>"$DEST/p2/env.sh"

du -sh "$DEST/p1" "$DEST/p2" "$DEST/p3" >&2
log "done: carry $DEST/p1, then $DEST/p3, then $DEST/p2, one call each (see benches/gpu/README.md)"
