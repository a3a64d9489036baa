#!/usr/bin/env bash
# Runs bench/gpu/run.sh here the way the device machine will: in a fresh copy of what the device
# tool sends (tracked and untracked, not ignored, files) plus the carry, with no Deno on PATH or in
# a cache (both hidden in a private mount namespace), an empty HOME and no network (a network
# namespace with only loopback up, as the device has: tests serve files on 127.0.0.1). Needs root,
# unshare and ip. The arguments go to run.sh; on a machine without a GPU give --allow-software
# (lavapipe) and a longer --budget.
#
#   bash bench/gpu/simulate.sh --allow-software --budget 1800
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/gpu/_common.sh
[ -f "$CARRY/deno.xz" ] || { echo "simulate: no $CARRY: run bash bench/gpu/pack.sh first" >&2; exit 1; }

sim=$(mktemp -d "${TMPDIR:-/tmp}/valle-gpu-sim.XXXXXX")
mkdir -p "$sim/tree" "$sim/home" "$sim/out"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$sim/tree"
mkdir -p "$sim/tree/$(dirname "$CARRY")"
cp -a "$CARRY" "$sim/tree/$CARRY"

# What a machine without Deno lacks: the binary PATH finds, and Deno's caches.
hide=()
deno_bin=$(command -v deno || true)
[ -n "$deno_bin" ] && hide+=("$(dirname "$(readlink -f "$deno_bin")")")
for d in "${DENO_DIR:-}" "$HOME/.cache/deno"; do [ -n "$d" ] && [ -d "$d" ] && hide+=("$d"); done
echo "simulate: copy in $sim/tree; hiding ${hide[*]:-nothing}; no network"

# shellcheck disable=SC2016 # expanded by the inner shell
inner='ip link set lo up
IFS=: read -ra dirs <<<"$HIDE"
for d in "${dirs[@]}"; do mount -t tmpfs none "$d"; done
if command -v deno >/dev/null; then echo "simulate: deno is still on PATH" >&2; exit 1; fi
cd "$SIM/tree" && exec bash bench/gpu/run.sh "$@"'
status=0
unshare --mount --net env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME="$sim/home" OUT="$sim/out" SIM="$sim" HIDE="$(IFS=:; echo "${hide[*]}")" \
  VALLE_GPU_CARRIED_LIBS="${VALLE_GPU_CARRIED_LIBS:-}" \
  bash -c "$inner" simulate "$@" || status=$?
echo "simulate: run.sh exited $status; files in $sim/out:"
(cd "$sim/out" && find . -type f -printf '%p %s bytes\n' | sort)
exit "$status"
