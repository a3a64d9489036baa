#!/usr/bin/env bash
# Builds bench/gpu/carry/: what bench/gpu/run.sh needs on a lent GPU machine besides the working
# tree. That machine has the NVIDIA driver, python3 with PyTorch and transformers, and no network
# (no npm, no apt), and gets at most 64 MiB (working tree + carried folders). The carry holds:
#
#   deno.xz, deno.sha256  Deno $DENO_VERSION (the binary of the npm package @deno/linux-x64-glibc)
#   lib/                  the Vulkan loader and the libraries NVIDIA's Vulkan driver
#                         (libGLX_nvidia.so.0) links against, from Debian's packages, used there only
#                         where the machine lacks them; no Mesa: the driver is NVIDIA's own
#   deno_dir.tar          a DENO_DIR with what the run imports from npm or remote (run.sh uses
#                         --cached-only: a missing entry fails instead of reaching for the network;
#                         a tar so that `deno check bench/` does not walk into their sources)
#   golden/               the golden folders (../shared/golden beside the repository)
#
# Idempotent: downloads are kept in ~/.cache/valle-gpu-pack (VALLE_GPU_BUILD=… elsewhere), outside
# the repository so that Deno's tools do not walk into them; reruns take seconds. Prints the sizes and fails when the tree and the carry exceed 64 MiB.
#
#   bash bench/gpu/pack.sh            (GOLDEN_DIR=… to take the golden folders from elsewhere)
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/gpu/_common.sh

LIMIT=$((64 * 1024 * 1024))
build=${VALLE_GPU_BUILD:-${XDG_CACHE_HOME:-$HOME/.cache}/valle-gpu-pack}
golden_src=${GOLDEN_DIR:-../shared/golden}
# The Vulkan loader; glvnd's dispatch (libGLX_nvidia.so.0 needs libGLdispatch.so.0), GLX and EGL;
# libX11 and libXext, which the NVIDIA driver links against, with their own dependencies.
DEBS=(libvulkan1 libglvnd0 libglx0 libegl1 libx11-6 libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0)

say() { echo "pack: $*"; }
mkdir -p "$build" "$CARRY"

# --- Deno -------------------------------------------------------------------------------------
deno=$build/deno-$DENO_VERSION/package/deno
if [ ! -x "$deno" ]; then
  say "fetching @deno/linux-x64-glibc@$DENO_VERSION from npm"
  mkdir -p "$build/deno-$DENO_VERSION"
  (cd "$build/deno-$DENO_VERSION" && npm pack --silent "@deno/linux-x64-glibc@$DENO_VERSION" >/dev/null &&
    tar xzf deno-linux-x64-glibc-$DENO_VERSION.tgz)
fi
"$deno" --version | grep -q "^deno $DENO_VERSION " || { say "$deno is not Deno $DENO_VERSION"; exit 1; }
sum=$(sha256sum "$deno" | cut -d' ' -f1)
if [ ! -f "$CARRY/deno.xz" ] || [ "$(cut -d' ' -f1 "$CARRY/deno.sha256" 2>/dev/null)" != "$sum" ]; then
  say "compressing Deno (xz -9e, about a minute)"
  xz -9e -T1 -c "$deno" >"$CARRY/deno.xz.tmp"
  mv "$CARRY/deno.xz.tmp" "$CARRY/deno.xz"
  echo "$sum  deno" >"$CARRY/deno.sha256"
fi

# --- Vulkan loader and the NVIDIA driver's dependencies -------------------------------------
mkdir -p "$build/debs"
missing=()
for pkg in "${DEBS[@]}"; do
  compgen -G "$build/debs/${pkg}_*_amd64.deb" >/dev/null || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "downloading ${missing[*]} (Debian, amd64)"
  apt_opts=()
  if [ "$(dpkg --print-architecture)" != amd64 ]; then
    apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$build/apt-lists")
    mkdir -p "$build/apt-lists/partial"
    apt-get "${apt_opts[@]}" update -qq
  fi
  (cd "$build/debs" && apt-get "${apt_opts[@]}" download "${missing[@]}" 2>/dev/null) ||
    (apt-get "${apt_opts[@]}" update -qq && cd "$build/debs" && apt-get "${apt_opts[@]}" download "${missing[@]}")
fi
rm -rf "${build:?}/root" "${CARRY:?}/lib"
mkdir -p "$build/root" "$CARRY/lib"
for pkg in "${DEBS[@]}"; do
  deb=$(compgen -G "$build/debs/${pkg}_*_amd64.deb" | head -1)
  dpkg-deb -x "$deb" "$build/root"
  basename "$deb" >>"$CARRY/lib/PACKAGES"
done
# Each package's shared library under its soname (the symlink), as a plain file.
find "$build/root/usr/lib/x86_64-linux-gnu" -maxdepth 1 -type l -name 'lib*.so.*' -exec cp -L -t "$CARRY/lib" {} +

# --- DENO_DIR -----------------------------------------------------------------------------------
mapfile -t entries < <(printf '%s\n' "${RUN_SCRIPTS[@]}"; run_test_files)
say "caching what ${#entries[@]} entry points import"
DENO_DIR=$build/deno_dir "$deno" cache --quiet "${entries[@]}"
mapfile -t packages < <(DENO_DIR=$build/deno_dir "$deno" run -A bench/gpu/npm_deps.ts "${entries[@]}")
rm -rf "${build:?}/carried_deno_dir"
mkdir -p "$build/carried_deno_dir"
if [ ${#packages[@]} -gt 0 ]; then
  # Deno installs the lockfile's whole npm snapshot as soon as a run needs one package.
  say "the run imports ${packages[*]}: carrying every npm package of deno.lock"
  cp -a "$build/deno_dir/npm" "$build/carried_deno_dir/"
else
  say "the run imports no npm package statically: no npm packages carried"
fi
[ -d "$build/deno_dir/remote" ] && cp -a "$build/deno_dir/remote" "$build/carried_deno_dir/"
tar -cf "$CARRY/deno_dir.tar" -C "$build/carried_deno_dir" .

# --- golden folders ---------------------------------------------------------------------------
rm -rf "$CARRY/golden"
if [ -d "$golden_src" ]; then
  mkdir -p "$CARRY/golden"
  for dir in "$golden_src"/*/; do
    [ -f "$dir/manifest.json" ] && cp -r "$dir" "$CARRY/golden/"
  done
  [ -f "$golden_src/README.md" ] && cp "$golden_src/README.md" "$CARRY/golden/"
  say "golden folders: $(find "$CARRY/golden" -mindepth 1 -maxdepth 1 -type d -printf '%f ')"
else
  say "no $golden_src: run.sh will check the copies in tests/fixtures"
fi

# --- size -------------------------------------------------------------------------------------
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
carried=$(du -sb "$CARRY" | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
for part in "$CARRY"/*; do printf 'pack: %-28s %s\n' "$part" "$(mib "$(du -sb "$part" | cut -f1)")"; done
say "carry $(mib "$carried") + working tree $(mib "$tree") = $(mib $((carried + tree))) of $(mib $LIMIT)"
if [ $((carried + tree)) -gt $LIMIT ]; then
  say "over the device's 64 MiB limit"
  exit 1
fi
